package webanktest

import "net/http"

// serveOCR answers the getOcrResult endpoint: parameters (400102), then the
// checks of authorize, with 66660020 for an order that has no result.
func (f *Fake) serveOCR(x *exchange) {
	p, err := parseSignedQuery(x, "get_file", "get_native")
	if err != nil {
		f.badRequest(x, err)
		return
	}
	if !f.authorize(x, p, answer{codeNotFound, "ocr result not found"}) {
		return
	}
	getFile := x.query.Get("get_file") == "1"
	getNative := x.query.Get("get_native") == "1"
	x.writeBody(http.StatusOK, codeOK, f.OCRResultBody(p.appID, p.orderNo, getFile, getNative))
}
