package jsonhttp

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/sirupsen/logrus"
)

func TestDecode(t *testing.T) {
	type body struct {
		Name string `json:"name"`
	}
	cases := []struct {
		in     string
		status int
		field  string
	}{
		{`{"name":"a"}`, 0, ""},
		{``, http.StatusBadRequest, ""},
		{`{"name":"a"} {}`, http.StatusBadRequest, ""},
		{`{"name":"a","size":1}`, http.StatusBadRequest, "size"},
		{`{"name":`, http.StatusBadRequest, ""},
		{`{"name":"` + strings.Repeat("x", 100) + `"}`, http.StatusRequestEntityTooLarge, ""},
	}
	for _, c := range cases {
		var b body
		r := httptest.NewRequest("POST", "/", strings.NewReader(c.in))
		e := Decode(httptest.NewRecorder(), r, &b, 64, "")
		switch {
		case c.status == 0 && e != nil:
			t.Errorf("%q: %v", c.in, e)
		case c.status == 0 && b.Name != "a":
			t.Errorf("%q decoded as %+v", c.in, b)
		case c.status != 0 && (e == nil || e.Status != c.status || e.Field != c.field):
			t.Errorf("%q: got %+v, want status %d field %q", c.in, e, c.status, c.field)
		}
	}
}

func TestLogRequestsHoldsNoSecrets(t *testing.T) {
	var out bytes.Buffer
	l := logrus.New()
	l.SetOutput(&out)
	h := LogRequests(l, "api request", http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		Write(w, http.StatusTeapot, map[string]string{"ok": "yes"})
	}))
	r := httptest.NewRequest("POST", "/login?token=sekrit", strings.NewReader(`{"password":"sekrit"}`))
	r.Header.Set("Authorization", "Basic sekrit")
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, r)
	if rec.Code != http.StatusTeapot || rec.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("answer %d %v", rec.Code, rec.Header())
	}
	if s := out.String(); strings.Contains(s, "sekrit") || !strings.Contains(s, "status=418") || !strings.Contains(s, "path=/login") {
		t.Fatalf("log line %q", s)
	}
}
