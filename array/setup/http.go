package setup

import (
	"crypto/tls"
	"net/http"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

func tlsConfig(cert tls.Certificate) *tls.Config {
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
}

// statusWriter remembers the status for the request log.
type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

// logRequests logs method, path, status, remote and duration: never
// bodies, which carry the passwords.
func (s *Service) logRequests(member int, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		s.log.WithFields(logrus.Fields{
			"member": member, "method": r.Method, "path": r.URL.Path, "status": sw.status,
			"remote": r.RemoteAddr, "duration": time.Since(start).Round(time.Microsecond).String(),
		}).Info("setup request")
	})
}

// logWriter sends net/http's own messages (TLS handshakes refused by a
// client that pins another certificate, say) to the log.
type logWriter struct{ log logrus.FieldLogger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Debug(strings.TrimSpace(string(p)))
	return len(p), nil
}
