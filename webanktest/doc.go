// Package webanktest provides a fake WeBank (Tencent FaceID) server for
// tests and for development without a WeBank account, in the spirit of
// net/http/httptest.
//
// The fake implements the oauth2 calls and four result queries signed with
// a SIGN ticket. All but queryfacerecord are GET (or HEAD) with parameters in
// the query string:
//
//	/api/oauth2/access_token            app_id (or appId), secret, grant_type=client_credential, version=1.0.0
//	/api/oauth2/api_ticket              app_id (or appId), access_token, type=SIGN, version=1.0.0
//	/api/server/getOcrResult            app_id, order_no, nonce, version, sign [, get_file=1] [, get_native=1]
//	/api/server/getBankCardOcrResult    app_id, order_no, nonce, version, sign [, get_file=1]
//	/api/server/sync                    app_id, order_no, nonce, version, sign [, get_file=1|2|3]
//	POST /api/v2/base/queryfacerecord[?orderNo=…]
//	                                    JSON body: appId, orderNo, nonce, version, sign
//	                                    [, getFile: 1|2|3 as number or string] [, queryVersion: "1.0"]
//
// Issuing an access token supersedes the app's previous one, which, with
// every SIGN ticket made from it, stays valid for [Options.Grace] and then
// dies, as WeBank documents. The four signed endpoints share one set of
// checks. The sign, the uppercase hex SHA-1 of the sorted values of the app
// id, order number, version, SIGN ticket and nonce (accepted in either
// case), is checked against every ticket recently issued for the app, so
// that a stale ticket is told apart from a wrong signature; a nonce that
// came with a valid signature to any of the four endpoints is refused on all
// of them for that app. The checks run in this order, the first that fails
// deciding the answer: parameters, app id, a ticket the sign was made with,
// that ticket's validity, the nonce's novelty, an order number not starting
// with "NOTFOUND". Every successful answer is a deterministic function of
// the request (see [Fake.OCRResultBody], [Fake.BankCardResultBody],
// [Fake.SyncResultBody] and [Fake.FaceRecordResultBody]) and the wrapper
// {"code","msg","bizSeqNo","transactionTime","result":{…}}, with the
// business fields under "result", as docs/protocol.md §8.4 reads WeBank's
// flat field tables. On every signed endpoint the order number must be 1 to 32
// of [A-Za-z0-9_-], the nonce 32 of [A-Za-z0-9] and the sign 40 hex
// digits.
//
// Details that are the fake's own choice, or go beyond what WeBank
// documents:
//
//   - getOcrResult and getBankCardOcrResult: only the value "1" of get_file
//     (or get_native) asks for photos (or the native place); other
//     parameters are ignored.
//   - getBankCardOcrResult: fields are spelt bankCardNo, bankCardValidDate
//     (MM/YYYY, as WeBank's bank-card OCR upload answers it) and warnCode, as
//     in docs/protocol.md §8.1; the sibling upload API spells them bankcardNo,
//     bankcardValidDate and warningCode.
//   - sync: get_file absent or empty asks for no file, as documented; a
//     value other than 1, 2 or 3 is refused with "400102", where WeBank
//     documents "no file". The result holds name, idNo and idType, and the
//     top level app_id and order_no, as in WeBank's example. Other
//     parameters are ignored.
//   - queryfacerecord: the body must be exactly one JSON object of at most
//     1 MiB with no repeated key, sent with Content-Type application/json
//     (the only parameter allowed is charset=UTF-8, in any case) and a
//     Content-Length (a chunked body is refused with "Content-Length
//     required"). appId, orderNo, nonce, version and sign must be non-empty
//     JSON strings; getFile 1, 2 or 3 as a number written so or a string,
//     or ""; queryVersion only the string "1.0". If the URL has orderNo, it
//     must be the body's. Other members and URL parameters are ignored.
//   - Photos and videos are base64 of Options.PhotoBytes pseudo-random
//     bytes, framed as JPEG or MP4.
//
// Answers are JSON with HTTP status 200, as WeBank's are, except for faults,
// an unknown path (404, {"code":"404","msg":"not found"}) and a method the
// endpoint does not take (405, with an Allow header; HEAD is answered as
// GET, without the body). WeBank's table of error codes is not public, so
// the codes below other than "0" and "66660020" for getOcrResult are the
// fake's own choices:
//
//	"0"         success
//	"15"        api_ticket: access_token unknown, expired or superseded past grace;
//	            signed endpoints: signed with a ticket that is no longer valid
//	"400101"    signed endpoints: sign matches no ticket of the app, or nonce reused
//	"400102"    parameter missing, empty, repeated or malformed, or (queryfacerecord)
//	            a bad Content-Type, Content-Length or JSON body (any endpoint)
//	"400103"    unknown app id (any endpoint), or wrong secret (access_token)
//	"66660020"  getOcrResult, getBankCardOcrResult: no OCR result for the order
//	            (documented for ID-card OCR; assumed for bank cards)
//	"66660011"  sync, queryfacerecord: no face result for the order
//
// No answer and no log line ever contains a secret, access_token, ticket,
// sign or nonce, and no log line a result field.
//
// Tests see what each endpoint received with [Fake.Calls] and
// [Fake.Requests], keyed by the Path constants. Faults such as an HTTP 502,
// a hang or a reset connection can be injected per endpoint with
// [Fake.SetFault]. When the fake runs as a process, the same controls are
// served as JSON under /__fake/:
//
//	GET  /__fake/stats                     all counters
//	POST /__fake/fault?endpoint=token&status=502&code=&delay=2s&malformed=1&hang=1&reset=1
//	                                       endpoint: token, ticket, ocr, bankcard, sync, facerecord
//	POST /__fake/clear                     remove every fault
//	POST /__fake/rotate?app_id=ID          same as Fake.RotateToken
package webanktest
