package remotesetup

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
)

// ErrInputEnded says that the terminal closed (Ctrl-D) before the wizard
// had its answers; nothing was applied.
var ErrInputEnded = errors.New("input ended before the wizard had its answers; nothing was applied")

// maxLine bounds one typed answer.
const maxLine = 4096

// Prompter asks questions on a terminal: it writes to Out and reads the
// answers from In one byte at a time, so that it never reads ahead of the
// line it asks for (a password prompt reads the terminal directly).
// ReadPassword reads one line without echo.
type Prompter struct {
	In           io.Reader
	Out          io.Writer
	ReadPassword func() ([]byte, error)
}

// line reads one line without its end.
func (p *Prompter) line() (string, error) {
	var b []byte
	one := make([]byte, 1)
	for len(b) < maxLine {
		n, err := p.In.Read(one)
		if n == 1 {
			if one[0] == '\n' {
				return strings.TrimRight(string(b), "\r"), nil
			}
			b = append(b, one[0])
			continue
		}
		if err == io.EOF {
			return "", ErrInputEnded
		}
		if err != nil {
			return "", err
		}
	}
	return "", fmt.Errorf("an answer longer than %d characters", maxLine)
}

// Ask asks until check takes the answer; an empty answer takes def when
// there is one. A wrong answer is explained and asked again.
func (p *Prompter) Ask(question, def string, check func(string) error) (string, error) {
	for {
		if def != "" {
			fmt.Fprintf(p.Out, "%s [%s]: ", question, def)
		} else {
			fmt.Fprintf(p.Out, "%s: ", question)
		}
		s, err := p.line()
		if err != nil {
			return "", err
		}
		if s = strings.TrimSpace(s); s == "" {
			s = def
		}
		if s == "" {
			fmt.Fprintf(p.Out, "  an answer is needed\n")
			continue
		}
		if check != nil {
			if err := check(s); err != nil {
				fmt.Fprintf(p.Out, "  %v\n", err)
				continue
			}
		}
		return s, nil
	}
}

// Secret asks for a secret twice without echo, until check takes it and
// the two typings are equal.
func (p *Prompter) Secret(question string, check func([]byte) error) ([]byte, error) {
	for {
		first, err := p.readSecret(question + ": ")
		if err != nil {
			return nil, err
		}
		if err := check(first); err != nil {
			fmt.Fprintf(p.Out, "  the password %v\n", err)
			continue
		}
		second, err := p.readSecret(question + " (again): ")
		if err != nil {
			return nil, err
		}
		if !bytes.Equal(first, second) {
			fmt.Fprintf(p.Out, "  the two passwords differ; type it again\n")
			continue
		}
		return first, nil
	}
}

// SecretOnce asks for an existing secret, such as the group's admin
// password, once without echo.
func (p *Prompter) SecretOnce(question string) ([]byte, error) {
	for {
		s, err := p.readSecret(question + ": ")
		if err != nil {
			return nil, err
		}
		if len(s) > 0 {
			return s, nil
		}
		fmt.Fprintf(p.Out, "  an answer is needed\n")
	}
}

func (p *Prompter) readSecret(prompt string) ([]byte, error) {
	fmt.Fprint(p.Out, prompt)
	s, err := p.ReadPassword()
	fmt.Fprintln(p.Out)
	if errors.Is(err, io.EOF) {
		return nil, ErrInputEnded
	}
	return bytes.TrimRight(s, "\r\n"), err
}

// Confirm asks a yes/no question.
func (p *Prompter) Confirm(question string, def bool) (bool, error) {
	d := "y/N"
	if def {
		d = "Y/n"
	}
	for {
		fmt.Fprintf(p.Out, "%s [%s]: ", question, d)
		s, err := p.line()
		if err != nil {
			return false, err
		}
		switch strings.ToLower(strings.TrimSpace(s)) {
		case "":
			return def, nil
		case "y", "yes":
			return true, nil
		case "n", "no":
			return false, nil
		}
		fmt.Fprintf(p.Out, "  answer yes or no\n")
	}
}
