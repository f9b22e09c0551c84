package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"

	"github.com/webanksign/caddy-webanksign/webanktest"
)

// walk runs one face verification through the sidecar as an app that holds
// no secret and no ticket runs it, then one SDK launch, and prints each
// step. Signs and nonces are shortened: they are single-use launch values,
// but the demo's output is no place for them either.
func walk(fake *webanktest.Server, sidecar string) error {
	fmt.Println("— a face verification, start to finish, the app holding no secret —")
	fmt.Println()
	const orderNo, userID = "FACE20261126003", "user20261126"

	var adv struct {
		Code   string `json:"code"`
		Result struct {
			FaceID        string `json:"faceId"`
			OptimalDomain string `json:"optimalDomain"`
		} `json:"result"`
	}
	if err := step("1. the app starts a verification: getAdvFaceId, through webank_sign",
		sidecar+webanktest.PathAdvFaceID, map[string]string{"orderNo": orderNo, "name": "张三", "idNo": "110101199003071234", "userId": userID},
		&adv); err != nil {
		return err
	}
	if adv.Code != "0" {
		return fmt.Errorf("getAdvFaceId answered code %q", adv.Code)
	}
	fmt.Printf("  ← faceId %s, optimalDomain %s (name and ID number reached WeBank, signed; never logged)\n\n",
		adv.Result.FaceID, adv.Result.OptimalDomain)

	var login struct{ URL string }
	if err := step("2. the app asks the sidecar for the H5 login URL",
		sidecar+"/webank/h5_login_url", map[string]string{"order_no": orderNo, "user_id": userID, "face_id": adv.Result.FaceID,
			"optimal_domain": adv.Result.OptimalDomain, "callback_url": "https://app.example.com/face/done"},
		&login); err != nil {
		return err
	}
	u, err := url.Parse(login.URL)
	if err != nil {
		return err
	}
	fmt.Printf("  ← %s://%s%s?…&sign=%s… (signed with a NONCE ticket for %s, which stays in the sidecar)\n\n",
		u.Scheme, u.Host, u.Path, u.Query().Get("sign")[:6], userID)

	fmt.Println("3. the user's browser opens it: WeBank's login page, then back to the app")
	browser := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := browser.Get(login.URL)
	if err != nil {
		return err
	}
	resp.Body.Close()
	back, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusFound || err != nil {
		return fmt.Errorf("the login page answered %s, not a redirect", resp.Status)
	}
	cb := back.Query()
	fmt.Printf("  ← %s, to %s://%s%s?code=%s&orderNo=%s&h5faceId=…&newSignature=%s…\n\n",
		resp.Status, back.Scheme, back.Host, back.Path, cb.Get("code"), cb.Get("orderNo"), cb.Get("newSignature")[:6])

	for _, c := range []struct{ what, code string }{{"the callback as WeBank sent it", cb.Get("code")}, {"the same with its code changed to 1", "1"}} {
		var v struct{ Valid bool }
		if err := step("4. the app has the sidecar check "+c.what, sidecar+"/webank/verify",
			map[string]string{"order_no": cb.Get("orderNo"), "code": c.code, "sign": cb.Get("newSignature")}, &v); err != nil {
			return err
		}
		fmt.Printf("  ← {\"valid\": %v}\n\n", v.Valid)
	}

	var rec struct{ Code string }
	if err := step("5. the app fetches the result: queryfacerecord, through webank_sign",
		sidecar+webanktest.PathFaceRecord, map[string]string{"orderNo": orderNo}, &rec); err != nil {
		return err
	}
	fmt.Printf("  ← code %s\n\n", rec.Code)

	var sdk struct {
		AppID   string `json:"app_id"`
		UserID  string `json:"user_id"`
		Nonce   string `json:"nonce"`
		Version string `json:"version"`
		Sign    string `json:"sign"`
	}
	if err := step("6. and a launch in the mobile SDK: the app asks the sidecar for the SDK's sign",
		sidecar+"/webank/sdk_sign", map[string]string{"user_id": "user20261127"}, &sdk); err != nil {
		return err
	}
	fmt.Printf("  ← app_id %s, user_id %s, version %s, nonce %s…, sign %s…\n", sdk.AppID, sdk.UserID, sdk.Version, sdk.Nonce[:4], sdk.Sign[:6])
	var ok struct{ Code string }
	if err := post(fake.URL+webanktest.PathSDKLogin, map[string]string{"appId": sdk.AppID, "userId": sdk.UserID,
		"nonce": sdk.Nonce, "version": sdk.Version, "sign": sdk.Sign}, &ok); err != nil {
		return err
	}
	fmt.Printf("  the SDK logs in with it at WeBank: code %s\n\n", ok.Code)
	return nil
}

// step prints what the app sends and posts it.
func step(what, to string, body map[string]string, answer any) error {
	fmt.Println(what)
	u, _ := url.Parse(to)
	fmt.Printf("  app → POST %s %s\n", u.Path, jsonLine(body))
	return post(to, body, answer)
}

// post POSTs body as JSON and decodes the answer into answer.
func post(to string, body map[string]string, answer any) error {
	data, _ := json.Marshal(body)
	resp, err := http.Post(to, "application/json", bytes.NewReader(data))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("POST %s: %s %s", to, resp.Status, out)
	}
	return json.Unmarshal(out, answer)
}

func jsonLine(v map[string]string) string {
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.Encode(v)
	return string(bytes.TrimSpace(b.Bytes()))
}
