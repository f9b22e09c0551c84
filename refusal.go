package webanksign

import (
	"encoding/json"
	"net/http"
)

// refusal is a request the module answers by itself instead of signing it:
// a client's mistake, or a request this sidecar will not sign. Code is
// stable and meant for machines (operators alert on it), Msg for people;
// neither ever holds a secret or anything the client sent.
type refusal struct {
	Status int
	Code   string
	Msg    string
}

func (e *refusal) Error() string { return e.Msg }

// Every refusal of a request, in one table. Their codes are part of the
// module's interface: README lists them. The answers for a request that was
// fine but could not be served (ticket_unavailable, upstream_failed) are
// written where that happens, in forward.go, launch.go and verify.go, with
// writeError.
var (
	// What the request is.
	errConnect        = &refusal{405, "connect_not_supported", "HTTPS proxying (CONNECT) cannot be signed: the sidecar would see only encrypted bytes. Point the app at the sidecar's own URL, such as http://127.0.0.1:8080/api/server/getOcrResult, instead of using it as an HTTPS proxy"}
	errProxyHost      = &refusal{403, "proxy_host_not_allowed", "this sidecar signs requests for WeBank's host only (see proxy_hosts): it is not an open proxy"}
	errQueryMethod    = &refusal{405, "method_not_allowed", "this route signs GET and HEAD requests only"}
	errQueryShape     = &refusal{405, "wrong_shape", "this route signs GET requests with the parameters in the query string (mode query), not a POST body"}
	errJSONMethod     = &refusal{405, "method_not_allowed", "this route signs POST requests with a JSON body only"}
	errJSONShape      = &refusal{405, "wrong_shape", "this route signs POST requests with a JSON body (mode json), not parameters in the query string"}
	errBodyNotAllowed = &refusal{400, "body_not_allowed", "GET and HEAD requests to WeBank's query APIs carry no body"}
	errContentType    = &refusal{415, "content_type_unsupported", "the body must be JSON in UTF-8, sent with Content-Type: application/json (its one parameter, if any, charset=utf-8)"}
	errContentEnc     = &refusal{415, "content_encoding_unsupported", "the body must not be compressed (no Content-Encoding)"}
	errContentTypeRep = &refusal{400, "header_repeated", "Content-Type is given more than once"}
	errContentEncRep  = &refusal{400, "header_repeated", "Content-Encoding is given more than once"}
	errBodyTooLarge   = &refusal{413, "body_too_large", "the body is larger than this route accepts (see max_body_size)"}
	errBodyUnreadable = &refusal{400, "body_unreadable", "the body could not be read to its end"}
	errBodyTimeout    = &refusal{408, "body_timeout", "the body did not arrive in the time this route allows (see body_timeout)"}
	errFilesDenied    = &refusal{403, "photos_denied", "this route may not fetch photos or videos (photos deny): leave out get_file, or set it to 0"}
	errPhotoAPIDenied = &refusal{403, "photos_denied", "this route may not fetch photos or videos (photos deny): this API answers with the face photo"}

	// Which app it is for.
	errAppIDMismatch = &refusal{403, "app_id_mismatch", "app_id does not match the app this route signs for"}
	errAppIDUnknown  = &refusal{403, "app_id_unknown", "app_id is not one of the apps this route signs for"}
	errAppIDMissing  = &refusal{400, "app_id_missing", "app_id is required: this route signs for several apps and picks one by app_id"}
	errAppIDRepeated = &refusal{400, "app_id_repeated", "app_id is given more than once, with different values"}
	errBodyAppIDType = &refusal{400, "app_id_invalid", "appId must be a JSON string"}

	// The query string (query mode, and the URL of a JSON request).
	errQueryMalformed = &refusal{400, "query_malformed", "the query string cannot be parsed (use & between parameters and percent-encode reserved characters)"}
	errOrderNoMissing = &refusal{400, "order_no_missing", "order_no is required"}
	errOrderNoEmpty   = &refusal{400, "order_no_empty", "order_no is empty"}
	errOrderNoRepeat  = &refusal{400, "order_no_repeated", "order_no is given more than once"}
	errOrderNoLong    = &refusal{400, "order_no_too_long", "order_no is longer than 32 characters"}
	errOrderNoChars   = &refusal{400, "order_no_invalid", "order_no may only contain letters, digits, '_' and '-'"}
	errOrderNoURLRep  = &refusal{400, "order_no_repeated", "orderNo is given more than once in the URL"}
	errOrderNoURL     = &refusal{400, "order_no_mismatch", "orderNo in the URL differs from orderNo in the body"}

	// A name a lenient server may read as one the module owns (see
	// foldName), by the owned name it imitates: a server that reads names
	// regardless of case, last one winning, would take the client's value
	// for the signed one. Keyed by the owned name as the shape spells it.
	errNameConfusable = map[string]*refusal{
		paramAppID:   {400, "param_name_confusable", "a parameter's name reads as app_id to a lenient server (ignoring case and punctuation): send app_id spelled exactly so, or not at all"},
		paramOrderNo: {400, "param_name_confusable", "a parameter's name reads as order_no to a lenient server (ignoring case and punctuation): send order_no spelled exactly so, once"},
		paramNonce:   {400, "param_name_confusable", "a name reads as nonce to a lenient server (ignoring case and punctuation): the sidecar sets nonce itself; leave it out"},
		paramVersion: {400, "param_name_confusable", "a name reads as version to a lenient server (ignoring case and punctuation): the sidecar sets version itself; leave it out"},
		paramSign:    {400, "param_name_confusable", "a name reads as sign to a lenient server (ignoring case and punctuation): the sidecar sets sign itself; leave it out"},
		fieldAppID:   {400, "param_name_confusable", "a name reads as appId to a lenient server (ignoring case and punctuation): send appId in the JSON body only, spelled exactly so, or not at all"},
		fieldOrderNo: {400, "param_name_confusable", "a name reads as orderNo to a lenient server (ignoring case and punctuation): send orderNo in the JSON body, spelled exactly so (and in the URL, if at all, as orderNo)"},
		fieldUserID:  {400, "param_name_confusable", "a name reads as userId to a lenient server (ignoring case and punctuation): send userId in the JSON body only, spelled exactly so, once"},
		fieldName:    {400, "param_name_confusable", "a name reads as name to a lenient server (ignoring case and punctuation): send name in the JSON body only, spelled exactly so, once"},
		fieldIDNo:    {400, "param_name_confusable", "a name reads as idNo to a lenient server (ignoring case and punctuation): send idNo in the JSON body only, spelled exactly so, once"},
	}

	// webankAppId: the name geth5faceid's body gives the app, and some
	// clients send to the other faceId APIs (docs/protocol.md §8.3).
	errBodyAppIDTwice = &refusal{400, "param_name_confusable", "the body names the app twice (appId and webankAppId): send one; geth5faceid's is webankAppId"}
	errWebankAppID    = &refusal{400, "param_name_confusable", "a name reads as webankAppId, which WeBank may read as the app: the sidecar names the app itself (appId); leave it out"}

	// The JSON body.
	errBodyMissing    = &refusal{400, "body_missing", "the request has no body: this API takes a JSON object"}
	errBodyMalformed  = &refusal{400, "body_malformed", "the body is not one well-formed JSON object in UTF-8 (a lone surrogate escape such as \\ud800 is not UTF-8)"}
	errBodyKeyRepeat  = &refusal{400, "body_key_repeated", "the body has a key more than once (in the same object, at any depth)"}
	errBodyOrderNo    = &refusal{400, "order_no_missing", "orderNo is required"}
	errBodyOrderEmpty = &refusal{400, "order_no_empty", "orderNo is empty"}
	errBodyOrderType  = &refusal{400, "order_no_invalid", "orderNo must be a JSON string"}
	errBodyOrderLong  = &refusal{400, "order_no_too_long", "orderNo is longer than 32 characters"}
	errBodyOrderChars = &refusal{400, "order_no_invalid", "orderNo may only contain letters, digits, '_' and '-'"}

	// The JSON body's userId, name and idNo (value sets user_id and
	// h5_face_id). Personal data: no message ever holds a value.
	errBodyUserID      = &refusal{400, "user_id_missing", "userId is required"}
	errBodyUserIDEmpty = &refusal{400, "user_id_empty", "userId is empty"}
	errBodyUserIDType  = &refusal{400, "user_id_invalid", "userId must be a JSON string"}
	errBodyUserIDLong  = &refusal{400, "user_id_too_long", "userId is longer than 32 characters"}
	errBodyUserIDChars = &refusal{400, "user_id_invalid", "userId may only contain letters, digits, '_' and '-'"}
	errBodyName        = &refusal{400, "name_missing", "name is required"}
	errBodyNameInvalid = &refusal{400, "name_invalid", "name must be a non-empty JSON string without control characters"}
	errBodyNameLong    = &refusal{400, "name_too_long", "name is longer than 64 characters"}
	errBodyIDNo        = &refusal{400, "id_no_missing", "idNo is required"}
	errBodyIDNoInvalid = &refusal{400, "id_no_invalid", "idNo must be a non-empty JSON string of letters and digits"}
	errBodyIDNoLong    = &refusal{400, "id_no_too_long", "idNo is longer than 32 characters"}

	// webank_sign_local's requests (local.go, launch.go, verify.go).
	errLocalEndpoint       = &refusal{404, "endpoint_unknown", "webank_sign_local answers paths ending in /sdk_sign, /h5_login_url or /verify"}
	errLocalMethod         = &refusal{405, "method_not_allowed", "this endpoint takes POST requests with a JSON object"}
	errLocalField          = &refusal{400, "field_unknown", "the body has a member this endpoint does not take (see README, webank_sign_local)"}
	errLocalFieldType      = &refusal{400, "field_invalid", "every member of the body must be a JSON string"}
	errLocalOrderNo        = &refusal{400, "order_no_invalid", "order_no must be 1 to 32 letters, digits, '_' and '-'"}
	errUserIDMissing       = &refusal{400, "user_id_missing", "user_id is required"}
	errUserIDInvalid       = &refusal{400, "user_id_invalid", "user_id must be 1 to 32 letters, digits, '_' and '-'"}
	errFaceIDMissing       = &refusal{400, "face_id_missing", "face_id is required: the faceId of getAdvFaceId's answer"}
	errFaceIDInvalid       = &refusal{400, "face_id_invalid", "face_id must be 1 to 64 letters, digits, '_' and '-'"}
	errCallbackMissing     = &refusal{400, "callback_url_missing", "callback_url is required: where WeBank sends the user back"}
	errCallbackInvalid     = &refusal{400, "callback_url_invalid", "callback_url must be an absolute http or https URL of at most 1024 bytes, without user information"}
	errCallbackDenied      = &refusal{400, "callback_host_not_allowed", "callback_url's host is not one of the hosts this route sends users back to (see callback_hosts)"}
	errLoginHostInvalid    = &refusal{400, "login_host_invalid", "optimal_domain must be a host name, with a port if any"}
	errLoginHostDenied     = &refusal{400, "login_host_not_allowed", "optimal_domain is not one of the hosts this route sends users to (see login_hosts)"}
	errFromInvalid         = &refusal{400, "from_invalid", "from must be browser or app"}
	errRedirectTypeInvalid = &refusal{400, "redirect_type_invalid", "redirect_type must be a number of one or two digits"}
	errKindInvalid         = &refusal{400, "kind_invalid", "kind must be face (a face or H5 callback, the default) or ocr"}
	errCodeMissing         = &refusal{400, "code_missing", "code is required to check a face or H5 callback: the code WeBank sent with it"}
	errCodeInvalid         = &refusal{400, "code_invalid", "code must be 1 to 16 letters and digits, after a minus sign if any"}
	errCodeNotTaken        = &refusal{400, "code_not_taken", "an OCR result is signed without a code: leave code out with kind ocr"}
	errSignMissing         = &refusal{400, "sign_missing", "sign is required: the signature WeBank sent (newSignature)"}
	errSignInvalid         = &refusal{400, "sign_invalid", "sign must be 40 hexadecimal digits"}
	errLaunchesBusy        = &refusal{503, "launches_busy", "too many launches are waiting for a NONCE ticket for this app (see nonce_limit and nonce_queue); try again shortly"}
)

// writeError answers with status and the JSON body {"code", "msg"}. The
// response is then complete, so it returns nil.
func writeError(w http.ResponseWriter, status int, code, msg string) error {
	return writeJSON(w, status, struct {
		Code string `json:"code"`
		Msg  string `json:"msg"`
	}{code, msg})
}

// writeJSON answers with status and v as JSON: every answer the module
// writes by itself, to clients and on the admin API, goes through here.
func writeJSON(w http.ResponseWriter, status int, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	hdr := w.Header()
	hdr.Set("Content-Type", "application/json; charset=utf-8")
	hdr.Set("Cache-Control", "no-store")
	hdr.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
	return nil
}
