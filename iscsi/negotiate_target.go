package iscsi

import "strconv"

// TargetLimits are what a target accepts in operational negotiation.
type TargetLimits struct {
	MaxRecvDataSegmentLength uint32 // declared to the initiator
	MaxBurstLength           uint32
	FirstBurstLength         uint32
	MaxOutstandingR2T        uint32
	ImmediateData            bool
	InitialR2T               bool
	Digests                  bool // accept CRC32C digests
}

// TargetNegotiation is the responder's side of operational negotiation.
type TargetNegotiation struct {
	limits   TargetLimits
	seen     map[string]bool
	declared bool
	params   Params
}

// NewTargetNegotiation starts a negotiation for a "Normal" or "Discovery"
// session.
func NewTargetNegotiation(sessionType string, l TargetLimits) *TargetNegotiation {
	n := &TargetNegotiation{limits: l, seen: map[string]bool{}, params: DefaultParams()}
	n.params.SessionType = sessionType
	if l.MaxRecvDataSegmentLength != 0 {
		n.params.TargetMaxRecvDSL = l.MaxRecvDataSegmentLength
	}
	return n
}

// Respond answers one login or text request's keys. Keys that identify
// the session (InitiatorName, TargetName, ...) are left to the caller.
func (n *TargetNegotiation) Respond(offer Text) (Text, error) {
	if _, err := valuesOf(offer); err != nil {
		return nil, err
	}
	var resp Text
	for _, p := range offer {
		if declaredKeys[p.Key] {
			continue
		}
		if n.seen[p.Key] {
			return nil, &NegotiationError{p.Key, p.Value, "key negotiated twice"}
		}
		n.seen[p.Key] = true
		if answer := n.answer(p.Key, p.Value); answer != "" {
			resp = append(resp, Pair{p.Key, answer})
		}
	}
	if !n.declared {
		n.declared = true
		resp = append(resp, Pair{"MaxRecvDataSegmentLength", strconv.Itoa(int(n.params.TargetMaxRecvDSL))})
	}
	return resp, n.params.checkBursts()
}

func (n *TargetNegotiation) answer(key, v string) string {
	def, known := keyDefs[key]
	switch {
	case !known:
		return valNotUnderstood
	case n.params.SessionType == "Discovery" && !def.discovery:
		return valIrrelevant
	case def.checkValue(v) != nil:
		return valReject
	case key == "MaxRecvDataSegmentLength":
		n.params.InitiatorMaxRecvDSL = num(v)
		return ""
	}
	res := def.result(v, n.own(key))
	if res != valReject {
		def.apply(&n.params, res)
	}
	return res
}

// own is the target's side of each key.
func (n *TargetNegotiation) own(key string) string {
	l := n.limits
	limit := func(v, def uint32) string {
		if v == 0 {
			v = def
		}
		return strconv.Itoa(int(v))
	}
	switch key {
	case "HeaderDigest", "DataDigest":
		if l.Digests {
			return "CRC32C,None"
		}
		return "None"
	case "MaxConnections":
		return "1"
	case "ErrorRecoveryLevel":
		return "0"
	case "InitialR2T":
		return yesNo(l.InitialR2T)
	case "ImmediateData":
		return yesNo(l.ImmediateData)
	case "MaxBurstLength":
		return limit(l.MaxBurstLength, 1<<20)
	case "FirstBurstLength":
		// Never above our MaxBurstLength, or the outcome could break the
		// rule that FirstBurstLength <= MaxBurstLength.
		first, maxBurst := l.FirstBurstLength, l.MaxBurstLength
		if first == 0 {
			first = 65536
		}
		if maxBurst == 0 {
			maxBurst = 1 << 20
		}
		return strconv.Itoa(int(min(first, maxBurst)))
	case "MaxOutstandingR2T":
		return limit(l.MaxOutstandingR2T, 1)
	case "DefaultTime2Wait":
		return "2"
	case "DefaultTime2Retain":
		return "0"
	case "DataPDUInOrder", "DataSequenceInOrder":
		return "Yes"
	case "IFMarker", "OFMarker", "RDMAExtensions":
		return "No"
	case "TaskReporting":
		return "RFC3720"
	case "iSCSIProtocolLevel":
		return "1"
	}
	return ""
}

// Params returns the outcome so far.
func (n *TargetNegotiation) Params() Params { return n.params }
