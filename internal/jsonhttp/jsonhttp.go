// Package jsonhttp is what the lab's HTTPS JSON services (the management
// API and the members' setup endpoints) share: strict request decoding,
// response writing, and request logs that never hold a secret.
package jsonhttp

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"net/http"
	"strings"
	"time"

	"github.com/sirupsen/logrus"
)

// DecodeError says why a request body was refused, and with which status.
type DecodeError struct {
	Status int
	// Field is the unknown JSON field that was sent, if that was the fault.
	Field   string
	Message string
}

func (e *DecodeError) Error() string { return e.Message }

// Decode reads one JSON object of at most maxBody bytes into v, refusing
// unknown fields and anything after the object. hint ends the message for
// an empty body, saying where the format is described.
func Decode(w http.ResponseWriter, r *http.Request, v any, maxBody int64, hint string) *DecodeError {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBody))
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if _, next := dec.Token(); !errors.Is(next, io.EOF) {
			err = errors.New("data after the object")
		}
	}
	var mbe *http.MaxBytesError
	switch {
	case err == nil:
		return nil
	case errors.As(err, &mbe):
		return &DecodeError{Status: http.StatusRequestEntityTooLarge, Message: fmt.Sprintf("request body is over %d bytes", maxBody)}
	case errors.Is(err, io.EOF):
		return &DecodeError{Status: http.StatusBadRequest, Message: "request body is empty; send a JSON object" + hint}
	}
	field := ""
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		field = strings.Trim(f, `"`)
	}
	return &DecodeError{Status: http.StatusBadRequest, Field: field, Message: "malformed JSON body: " + err.Error()}
}

// Write answers code with v as indented JSON, never cached.
func Write(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

// LogRequests logs each request's method, path, status, remote address
// and duration under msg: never headers, query strings or bodies, which is
// where passwords and tokens travel.
func LogRequests(l logrus.FieldLogger, msg string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w}
		next.ServeHTTP(sw, r)
		if sw.status == 0 {
			sw.status = http.StatusOK
		}
		l.WithFields(logrus.Fields{
			"method": r.Method, "path": r.URL.Path, "status": sw.status,
			"remote": r.RemoteAddr, "duration": time.Since(start).Round(time.Microsecond).String(),
		}).Info(msg)
	})
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

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// ErrorLog sends net/http's own messages (TLS handshakes refused by
// clients that pin another certificate, say) to l at debug level.
func ErrorLog(l logrus.FieldLogger) *log.Logger {
	return log.New(logWriter{l}, "", 0)
}

type logWriter struct{ log logrus.FieldLogger }

func (w logWriter) Write(p []byte) (int, error) {
	w.log.Debug(strings.TrimSpace(string(p)))
	return len(p), nil
}
