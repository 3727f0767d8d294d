package initiator

import (
	"context"
	"fmt"

	"github.com/hitkit/hitkit/iscsi"
)

// maxTextExchanges bounds a text exchange against a target that never sets
// the F bit.
const maxTextExchanges = 1024

// Text sends a text request and gathers the target's answer, which may
// come in several PDUs (RFC 7143 section 11.10: the target sets C, or
// leaves F clear, and we ask for more with an empty request that echoes
// its Target Transfer Tag).
func (s *Session) Text(ctx context.Context, keys iscsi.Text) (iscsi.Text, error) {
	c, err := s.waitReady(ctx, false)
	if err != nil {
		return nil, err
	}
	var acc iscsi.TextAccumulator
	req := &iscsi.TextRequest{Final: true, TargetTransferTag: iscsi.ReservedTag, Immediate: true}
	data := keys.Encode()
	for range maxTextExchanges {
		h, body, err := s.request(ctx, c, textReq{req}, data)
		if err != nil {
			return nil, err
		}
		var resp iscsi.TextResponse
		resp.Unmarshal(h)
		if resp.Final && resp.Continue {
			return nil, protocolErrorf("text response with both F and C set")
		}
		if err := acc.Add(body, resp.Continue); err != nil {
			return nil, err
		}
		if resp.Final {
			return acc.Text()
		}
		req = &iscsi.TextRequest{Final: true, TargetTransferTag: resp.TargetTransferTag, Immediate: true}
		data = nil
	}
	return nil, protocolErrorf("text response did not end after %d PDUs", maxTextExchanges)
}

// SendTargets asks a discovery session for the targets behind the portal
// and their addresses.
func (s *Session) SendTargets(ctx context.Context) ([]iscsi.DiscoveredTarget, error) {
	text, err := s.Text(ctx, iscsi.Text{{Key: "SendTargets", Value: "All"}})
	if err != nil {
		return nil, fmt.Errorf("SendTargets: %w", err)
	}
	return iscsi.ParseSendTargets(text)
}

// Discover logs in a discovery session at cfg.Portal, lists its targets and
// logs out.
func Discover(ctx context.Context, cfg Config) ([]iscsi.DiscoveredTarget, error) {
	cfg.TargetName = ""
	if cfg.ReplacementTimeout == 0 {
		cfg.ReplacementTimeout = -1
	}
	s, err := Dial(ctx, cfg)
	if err != nil {
		return nil, err
	}
	targets, err := s.SendTargets(ctx)
	s.Close()
	return targets, err
}
