// Package webanktest provides a fake WeBank (Tencent FaceID) server for
// tests and for development without a WeBank account, in the spirit of
// net/http/httptest.
//
// The fake implements the oauth2 calls, the result queries signed with a
// SIGN ticket, the APIs that start a verification, and the two places a
// verification is launched with a NONCE ticket: the H5 login page and a
// stand-in for the mobile SDK. The GET endpoints take their parameters in
// the query string (HEAD is answered as GET, but for the login page); the
// POST endpoints a JSON body, with the order number also allowed on the URL
// as ?orderNo=…:
//
//	/api/oauth2/access_token            app_id (or appId), secret, grant_type=client_credential, version=1.0.0
//	/api/oauth2/api_ticket              app_id (or appId), access_token, type=SIGN, version=1.0.0
//	/api/oauth2/api_ticket              app_id (or appId), access_token, type=NONCE, version=1.0.0, user_id
//	/api/server/getOcrResult            app_id, order_no, nonce, version, sign [, get_file=1] [, get_native=1]
//	/api/server/getBankCardOcrResult    app_id, order_no, nonce, version, sign [, get_file=1]
//	/api/server/sync                    app_id, order_no, nonce, version, sign [, get_file=1|2|3]
//	POST /api/v2/base/queryfacerecord   appId, orderNo, nonce, version, sign
//	                                    [, getFile: 1|2|3 as number or string] [, queryVersion: "1.0"]
//	POST /api/v2/base/queryphotoinfo    appId, orderNo, nonce, version, sign
//	POST /api/paas/bankcardocrapp       appId, orderNo, nonce, version, sign, and the image
//	POST /api/server/getAdvFaceId       appId, orderNo, name, idNo, userId, version, sign, nonce
//	POST /api/server/getfaceid          [, sourcePhotoStr] [, sourcePhotoType: 1|2 as number or string]
//	POST /api/server/getPlusFaceId      (the same for all four)
//	POST /api/server/getWillFaceId
//	POST /api/server/h5/geth5faceid     appId, orderNo, name, idNo, userId, version, sign
//	                                    [, sourcePhotoStr] [, sourcePhotoType]
//	GET  /api/web/login                 appId, version, nonce, orderNo, faceId, url, from=browser|app,
//	                                    userId, sign, redirectType
//	POST /api/sdk/login                 appId, userId, nonce, version, sign [, orderNo]
//
// # Tokens and tickets
//
// Issuing an access token supersedes the app's previous one, which, with
// every ticket made from it, stays valid for [Options.Grace] and then dies,
// as WeBank documents. A SIGN ticket lives [Options.TicketTTL] and may be
// used many times. A NONCE ticket lives [Options.NonceTTL] (120 s), is
// bound to the user_id it was asked for (1 to 32 of [A-Za-z0-9_-]) and is
// used up by the first launch it signs. Any type but SIGN or NONCE is
// refused. NONCE tickets are counted apart: [Fake.NonceCalls] and
// [Fake.NonceTickets], while [Fake.TicketCalls] counts only the other
// api_ticket requests.
//
// # Signs
//
// A sign is the uppercase hex SHA-1 of the sorted values of its value set,
// concatenated (accepted in either case). The value sets are those of
// docs/protocol.md §6:
//
//	orderNo type    app id, order number, version, SIGN ticket, nonce:
//	                getOcrResult, getBankCardOcrResult, sync, queryfacerecord,
//	                queryphotoinfo, bankcardocrapp
//	userId type     app id, user id, version, SIGN ticket, nonce: the four faceId APIs;
//	                app id, user id, version, NONCE ticket, nonce: the SDK login
//	geth5faceid     app id, order number, name, ID number, user id, version, SIGN ticket
//	login page      app id, order number, user id, version, faceId, NONCE ticket, nonce
//	callback        app id, order number, code, the app's latest SIGN ticket
//
// A SIGN-ticket sign is checked against every ticket recently issued for
// the app, so that a stale ticket is told apart from a wrong signature; a
// nonce that came with a valid signature to any SIGN-ticket endpoint is
// refused on all of them for that app. The checks run in this order, the
// first that fails deciding the answer: parameters, app id, a ticket the
// sign was made with, that ticket's validity, the nonce's novelty, and, for
// the result queries, an order number not starting with "NOTFOUND". A
// NONCE-ticket sign is checked against the tickets issued for that user of
// the app: a sign made with none of them, with a used one or with an
// expired one (or one whose token died) is refused with "400101", and a
// sign that passes uses its ticket up.
//
// On every signed endpoint the order number and user id must be 1 to 32 of
// [A-Za-z0-9_-], the nonce 32 of [A-Za-z0-9] and the sign 40 hex digits; on
// the launch APIs idNo must be 1 to 32 of [A-Za-z0-9] and name any
// non-empty string, signed as its UTF-8 bytes. The JSON endpoints take
// exactly one JSON object with no repeated key, sent with Content-Type
// application/json (the only parameter allowed is charset=UTF-8, in any
// case) and a Content-Length (a chunked body is refused with
// "Content-Length required"), of at most 1 MiB, or 8 MiB for the launch
// APIs and bankcardocrapp, which carry photos. Their named members must be
// non-empty JSON strings unless said otherwise; if the URL has orderNo, it
// must be the body's. Other members and URL parameters are ignored.
//
// # Answers
//
// Every successful answer of a result query is a deterministic function of
// the request (see [Fake.OCRResultBody], [Fake.BankCardResultBody],
// [Fake.SyncResultBody], [Fake.FaceRecordResultBody],
// [Fake.PhotoInfoResultBody] and [Fake.BankCardUploadResultBody]) and the
// wrapper {"code","msg","bizSeqNo","transactionTime","result":{…}}, with
// the business fields under "result", as docs/protocol.md §8.4 reads
// WeBank's flat field tables. The launch APIs answer result {bizSeqNo,
// transactionTime, orderNo, faceId (h5faceId for geth5faceid),
// optimalDomain, success}: the faceId is [FaceID] of the app and order, and
// optimalDomain is [Options.OptimalDomain], or by default the address the
// fake listens on, never the request's Host.
//
// The login page checks its parameters (url an absolute http or https URL),
// the app, that the faceId was issued by a launch API for the app and
// order, and the sign; it then uses the NONCE ticket up and redirects (302)
// to url with code=0, orderNo, h5faceId and newSignature (see
// [Fake.CallbackSignature]) added to url's own query. It refuses with HTTP
// 400 and {"code","msg"}, never a redirect. The SDK login answers
// {"code":"0","msg":"ok"}. Both are counted: [Fake.Logins],
// [Fake.SDKLogins].
//
// Details that are the fake's own choice, or go beyond what WeBank
// documents:
//
//   - getOcrResult and getBankCardOcrResult: only the value "1" of get_file
//     (or get_native) asks for photos (or the native place); other
//     parameters are ignored.
//   - getBankCardOcrResult: fields are spelt bankCardNo, bankCardValidDate
//     (MM/YYYY, as WeBank's bank-card OCR upload answers it) and warnCode, as
//     in docs/protocol.md §8.1; bankcardocrapp answers the same card spelt
//     bankcardNo, bankcardValidDate and warningCode, with no photo. The name
//     of bankcardocrapp's image member is not documented; the fake checks no
//     member beyond the five signed ones.
//   - sync: get_file absent or empty asks for no file, as documented; a
//     value other than 1, 2 or 3 is refused with "400102", where WeBank
//     documents "no file". The result holds name, idNo and idType, and the
//     top level app_id and order_no, as in WeBank's example.
//   - queryphotoinfo answers every code, refusals and faults included, as a
//     JSON number, as WeBank documents for its success; its photo is that
//     of queryfacerecord for the same order.
//   - The launch APIs have no "not found": they answer any order.
//   - The login page takes GET only: a HEAD would use the ticket up. The
//     SDK login answers with HTTP 200, as WeBank's APIs do.
//   - Photos and videos are base64 of Options.PhotoBytes pseudo-random
//     bytes, framed as JPEG or MP4.
//
// Answers are JSON with HTTP status 200, as WeBank's are, except for the
// login page, faults, an unknown path (404, {"code":"404","msg":"not
// found"}) and a method the endpoint does not take (405, with an Allow
// header). WeBank's table of error codes is not public, so the codes below
// other than "0" and "66660020" for getOcrResult are the fake's own
// choices:
//
//	"0"         success
//	"15"        api_ticket: access_token unknown, expired or superseded past grace;
//	            SIGN-ticket endpoints: signed with a ticket that is no longer valid;
//	            login page: no SIGN ticket was ever issued to sign the callback with
//	"400101"    SIGN-ticket endpoints: sign matches no ticket of the app, or nonce reused;
//	            login page, SDK login: sign matches no NONCE ticket of the user, or
//	            the ticket is used or expired
//	"400102"    parameter missing, empty, repeated or malformed, a bad Content-Type,
//	            Content-Length or JSON body, or (login page) a faceId not issued
//	            for the order
//	"400103"    unknown app id (any endpoint), or wrong secret (access_token)
//	"66660020"  getOcrResult, getBankCardOcrResult: no OCR result for the order
//	            (documented for ID-card OCR; assumed for bank cards)
//	"66660011"  sync, queryfacerecord, queryphotoinfo: no face result for the order
//
// No answer and no log line ever contains a secret, access_token, ticket,
// sign or nonce, but for the newSignature that the login page's redirect
// carries by design; no log line holds a result field, a name, an ID
// number, a photo, a user id or a callback url.
//
// Tests see what each endpoint received with [Fake.Calls] and
// [Fake.Requests], keyed by the Path constants. Faults such as an HTTP 502,
// a hang or a reset connection can be injected per endpoint with
// [Fake.SetFault]. When the fake runs as a process, the same controls are
// served as JSON under /__fake/:
//
//	GET  /__fake/stats                     all counters
//	POST /__fake/fault?endpoint=token&status=502&code=&delay=2s&malformed=1&hang=1&reset=1
//	                                       endpoint: token, ticket, nonce, ocr, bankcard, sync,
//	                                       facerecord, photoinfo, bankcardocr, advfaceid, faceid,
//	                                       plusfaceid, willfaceid, h5faceid, login, sdklogin
//	POST /__fake/clear                     remove every fault
//	POST /__fake/rotate?app_id=ID          same as Fake.RotateToken
package webanktest
