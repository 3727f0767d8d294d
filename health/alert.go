package health

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/smtp"
	"os"
	"strings"
	"time"
)

// Mail says where alerts go. The server is reached without
// authentication, as a local relay (the host's MTA) is.
type Mail struct {
	Server string   // host:port
	From   string   // default hitkit@HOSTNAME
	To     []string // one or more addresses
}

// ShouldAlert says whether a run whose state is now must send an alert:
// only when it differs from the last one sent (OK before any).
func ShouldAlert(m Memory, now State) bool { return now != m.Notified }

// SendAlert mails the change from the last notified state to r.State,
// with the problems, within ctx's deadline.
func SendAlert(ctx context.Context, mail Mail, from State, r Report) error {
	if len(mail.To) == 0 {
		return fmt.Errorf("no alert address")
	}
	host, _ := os.Hostname()
	sender := mail.From
	if sender == "" {
		sender = "hitkit@" + host
	}
	for _, a := range append([]string{sender}, mail.To...) {
		if strings.ContainsAny(a, "\r\n<>") || !strings.Contains(a, "@") {
			return fmt.Errorf("mail address %q is not valid", a)
		}
	}
	msg := alertMessage(host, sender, mail.To, from, r)
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(30 * time.Second)
	}
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", mail.Server)
	if err != nil {
		return fmt.Errorf("alert mail: %w", err)
	}
	conn.SetDeadline(deadline)
	serverHost, _, _ := net.SplitHostPort(mail.Server)
	c, err := smtp.NewClient(conn, serverHost)
	if err != nil {
		conn.Close()
		return fmt.Errorf("alert mail: %s: %w", mail.Server, err)
	}
	defer c.Close()
	if err := send(c, host, sender, mail.To, msg); err != nil {
		return fmt.Errorf("alert mail through %s: %w", mail.Server, err)
	}
	return nil
}

func send(c *smtp.Client, host, sender string, to []string, msg []byte) error {
	if host != "" {
		if err := c.Hello(host); err != nil {
			return err
		}
	}
	if err := c.Mail(sender); err != nil {
		return err
	}
	for _, a := range to {
		if err := c.Rcpt(a); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// alertMessage is an RFC 5322 message: the change in the subject, the
// problems (or the recovery) in the body.
func alertMessage(host, sender string, to []string, from State, r Report) []byte {
	var b bytes.Buffer
	id := make([]byte, 8)
	rand.Read(id)
	fmt.Fprintf(&b, "From: %s\n", sender)
	fmt.Fprintf(&b, "To: %s\n", strings.Join(to, ", "))
	fmt.Fprintf(&b, "Subject: hitkit health on %s: %s -> %s\n", host, from, r.State)
	fmt.Fprintf(&b, "Date: %s\n", r.Time.Format(time.RFC1123Z))
	fmt.Fprintf(&b, "Message-ID: <%s.hitkit-health@%s>\n", hex.EncodeToString(id), host)
	b.WriteString("MIME-Version: 1.0\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n")
	fmt.Fprintf(&b, "hitkit health on %s changed from %s to %s at %s.\n\n", host, from, r.State, r.Time.Format(time.RFC3339))
	problems := r.Problems()
	if len(problems) == 0 {
		b.WriteString("Every check is OK again.\n")
	}
	for _, f := range problems {
		fmt.Fprintf(&b, "%-8s %s: %s\n", f.State, f.Subject, f.Message)
	}
	fmt.Fprintf(&b, "\nhitkit health --verbose shows every check.\n")
	return b.Bytes() // the DATA writer turns each LF into CRLF
}
