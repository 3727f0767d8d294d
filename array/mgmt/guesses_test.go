package mgmt_test

import (
	"encoding/json"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/hitkit/hitkit/array"
	"github.com/hitkit/hitkit/groupapi"
)

// send makes a raw request with basic auth as admin/pw, or none when
// pw is empty and token is set.
func send(t *testing.T, f *fixture, method, path, body, pw, token string) (int, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, f.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if pw != "" {
		req.SetBasicAuth("admin", pw)
	} else if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := f.raw.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode, resp.Header
}

// TestWrongPasswordsRateLimited: past 5 wrong passwords a minute from an
// address, basic auth and login answer 429 with Retry-After, even with
// the right password; tokens already given out keep working.
func TestWrongPasswordsRateLimited(t *testing.T) {
	f := start(t)
	code, body := f.request(t, "POST", "/api/v1/login", `{"password":"`+string(f.password)+`"}`, "none")
	var lr groupapi.LoginResponse
	if err := json.Unmarshal(body, &lr); code != http.StatusOK || err != nil || lr.Token == "" {
		t.Fatalf("login: %d %s", code, body)
	}
	for i := range 5 {
		var code int
		if i%2 == 0 {
			code, _ = send(t, f, "GET", "/api/v1/group", "", "wrong-guess-"+strconv.Itoa(i), "")
		} else {
			code, _ = send(t, f, "POST", "/api/v1/login", `{"password":"wrong-guess"}`, "", "")
		}
		if code != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: status %d, want 401", i+1, code)
		}
	}
	for _, try := range []struct{ method, path, body, pw string }{
		{"GET", "/api/v1/group", "", string(f.password)},
		{"POST", "/api/v1/login", `{"password":"` + string(f.password) + `"}`, ""},
	} {
		code, h := send(t, f, try.method, try.path, try.body, try.pw, "")
		secs, _ := strconv.Atoi(h.Get("Retry-After"))
		if code != http.StatusTooManyRequests || secs < 1 || secs > 60 {
			t.Fatalf("%s %s after 5 wrong passwords: status %d, Retry-After %q; want 429 and 1 to 60 s", try.method, try.path, code, h.Get("Retry-After"))
		}
	}
	if code, _ := send(t, f, "GET", "/api/v1/group", "", "", lr.Token); code != http.StatusOK {
		t.Fatalf("a token from before: status %d", code)
	}
}

// TestCreateVolumeCHAPSecret: a host-chosen CHAP secret becomes the
// volume's secret file; a bad one is refused with 400 and changes
// nothing; the secret is never answered or logged.
func TestCreateVolumeCHAPSecret(t *testing.T) {
	f := start(t)
	for _, bad := range []string{"elevenchars", strings.Repeat("x", 256), "tab\tin-the-secret", " leading-space-secret"} {
		code, _ := send(t, f, "POST", "/api/v1/volumes", `{"name":"v2","size":1048576,"chap_secret":"`+strings.ReplaceAll(bad, "\t", `\t`)+`"}`, string(f.password), "")
		if code != http.StatusBadRequest {
			t.Fatalf("secret %q: status %d, want 400", bad, code)
		}
	}
	if _, err := os.Stat(array.CHAPSecretFile(f.g.Dir(), "v2")); !os.IsNotExist(err) {
		t.Fatalf("a refused volume left a secret file: %v", err)
	}
	const secret = "host chosen secret 12345"
	code, body := f.request(t, "POST", "/api/v1/volumes", `{"name":"v2","size":1048576,"chap_secret":"`+secret+`"}`, "basic")
	if code != http.StatusCreated {
		t.Fatalf("create: %d %s", code, body)
	}
	b, err := os.ReadFile(array.CHAPSecretFile(f.g.Dir(), "v2"))
	if err != nil || strings.TrimRight(string(b), "\n") != secret {
		t.Fatalf("secret file holds %q (%v)", b, err)
	}
	_, list := f.request(t, "GET", "/api/v1/volumes", "", "basic")
	if strings.Contains(string(body), secret) || strings.Contains(string(list), secret) || strings.Contains(f.log.String(), secret) {
		t.Fatal("the CHAP secret shows in an answer or the log")
	}
}
