// Package webanktest provides a fake WeBank (Tencent FaceID) server for
// tests and for development without a WeBank account, in the spirit of
// net/http/httptest.
//
// The fake implements the three server-side calls a getOcrResult client
// makes, all GET with parameters in the query string:
//
//	/api/oauth2/access_token  app_id (or appId), secret, grant_type=client_credential, version=1.0.0
//	/api/oauth2/api_ticket    app_id (or appId), access_token, type=SIGN, version=1.0.0
//	/api/server/getOcrResult  app_id, order_no, nonce, version, sign [, get_file=1] [, get_native=1]
//
// Issuing an access token supersedes the app's previous one, which, with
// every SIGN ticket made from it, stays valid for [Options.Grace] and then
// dies, as WeBank documents. getOcrResult checks the sign, the uppercase hex
// SHA-1 of the sorted values of app_id, order_no, version, SIGN ticket and
// nonce (accepted in either case), against every ticket recently issued for
// the app, so that a stale ticket is told apart from a wrong signature. Its
// checks run in this order, the first that fails deciding the answer:
// parameters, app_id, a ticket the sign was made with, that ticket's
// validity, the nonce not having come with a valid signature before, an
// order_no not starting with "NOTFOUND". A successful answer is a
// deterministic function of app_id, order_no, get_file and get_native (see
// [Fake.OCRResultBody]); only the value "1" of get_file or get_native asks
// for photos or the native place.
//
// Answers are JSON with HTTP status 200, as WeBank's are, except for faults,
// an unknown path (404, {"code":"404","msg":"not found"}) and a method other
// than GET or HEAD (405; HEAD is answered as GET, without the body). WeBank's
// table of error codes is not public, so the codes below other than "0" and
// "66660020" are the fake's own choices:
//
//	"0"         success
//	"15"        api_ticket: access_token unknown, expired or superseded past grace;
//	            getOcrResult: signed with a ticket that is no longer valid
//	"400101"    getOcrResult: sign matches no ticket of the app, or nonce reused
//	"400102"    parameter missing, empty, repeated or malformed (any endpoint)
//	"400103"    unknown app_id (any endpoint), or wrong secret (access_token)
//	"66660020"  getOcrResult: no OCR result for order_no
//
// No answer and no log line ever contains a secret, access_token, ticket,
// sign or nonce.
//
// Faults such as an HTTP 502, a hang or a reset connection can be injected per
// endpoint with [Fake.SetFault]. When the fake runs as a process, the same
// controls are served as JSON under /__fake/:
//
//	GET  /__fake/stats                     all counters
//	POST /__fake/fault?endpoint=token&status=502&code=&delay=2s&malformed=1&hang=1&reset=1
//	POST /__fake/clear                     remove every fault
//	POST /__fake/rotate?app_id=ID          same as Fake.RotateToken
package webanktest
