package iscsi

import (
	"slices"
	"strconv"
	"strings"
)

// Preferences are what an initiator offers in operational negotiation.
type Preferences struct {
	SessionType              string // "Normal" (default) or "Discovery"
	HeaderDigest             bool   // require CRC32C header digests
	DataDigest               bool   // require CRC32C data digests
	MaxRecvDataSegmentLength uint32
	MaxBurstLength           uint32
	FirstBurstLength         uint32
	ImmediateData            bool
	InitialR2T               bool
}

// InitiatorNegotiation is the originator's side of operational
// negotiation: it offers, checks the target's answers against the rules,
// and answers what the target offers in turn.
type InitiatorNegotiation struct {
	offer   map[string]string // what we proposed, by key
	settled map[string]bool
	params  Params
}

// NewInitiatorNegotiation prepares an offer. hitkit always runs
// ErrorRecoveryLevel 0 with one connection per session.
func NewInitiatorNegotiation(p Preferences) *InitiatorNegotiation {
	n := &InitiatorNegotiation{offer: map[string]string{}, settled: map[string]bool{}, params: DefaultParams()}
	if p.SessionType == "" {
		p.SessionType = "Normal"
	}
	n.params.SessionType = p.SessionType
	digest := func(on bool) string {
		if on {
			return "CRC32C"
		}
		return "None"
	}
	n.offer["HeaderDigest"] = digest(p.HeaderDigest)
	n.offer["DataDigest"] = digest(p.DataDigest)
	mrdsl := p.MaxRecvDataSegmentLength
	if mrdsl == 0 {
		mrdsl = DefaultMaxRecvDataSegmentLength
	}
	n.offer["MaxRecvDataSegmentLength"] = strconv.Itoa(int(mrdsl))
	n.params.InitiatorMaxRecvDSL = mrdsl
	if p.SessionType == "Discovery" {
		return n
	}
	n.offer["MaxConnections"] = "1"
	n.offer["ErrorRecoveryLevel"] = "0"
	n.offer["InitialR2T"] = yesNo(p.InitialR2T)
	n.offer["ImmediateData"] = yesNo(p.ImmediateData)
	if p.MaxBurstLength != 0 {
		n.offer["MaxBurstLength"] = strconv.Itoa(int(p.MaxBurstLength))
	}
	if p.FirstBurstLength != 0 {
		maxBurst := p.MaxBurstLength
		if maxBurst == 0 {
			maxBurst = DefaultParams().MaxBurstLength
		}
		n.offer["FirstBurstLength"] = strconv.Itoa(int(min(p.FirstBurstLength, max(maxBurst, 512))))
	}
	n.offer["DefaultTime2Wait"] = "0"
	n.offer["DefaultTime2Retain"] = "0"
	n.offer["MaxOutstandingR2T"] = "1"
	n.offer["DataPDUInOrder"] = "Yes"
	n.offer["DataSequenceInOrder"] = "Yes"
	return n
}

func yesNo(b bool) string {
	if b {
		return "Yes"
	}
	return "No"
}

// offerOrder keeps the first login PDU readable and deterministic.
var offerOrder = []string{
	"HeaderDigest", "DataDigest", "MaxConnections", "InitialR2T", "ImmediateData",
	"MaxRecvDataSegmentLength", "MaxBurstLength", "FirstBurstLength", "DefaultTime2Wait",
	"DefaultTime2Retain", "MaxOutstandingR2T", "DataPDUInOrder", "DataSequenceInOrder", "ErrorRecoveryLevel",
}

// Offer is the text of our proposal.
func (n *InitiatorNegotiation) Offer() Text {
	var t Text
	for _, k := range offerOrder {
		if v, ok := n.offer[k]; ok {
			t = append(t, Pair{k, v})
		}
	}
	return t
}

// ApplyResponse checks and records the target's keys, and returns our
// answers to keys the target offered itself (empty when there are none).
func (n *InitiatorNegotiation) ApplyResponse(resp Text) (Text, error) {
	if _, err := valuesOf(resp); err != nil {
		return nil, err
	}
	var reply Text
	for _, p := range resp {
		answer, err := n.applyOne(p.Key, p.Value)
		if err != nil {
			return nil, err
		}
		if answer != "" {
			reply = append(reply, Pair{p.Key, answer})
		}
	}
	return reply, n.params.checkBursts()
}

func (n *InitiatorNegotiation) applyOne(key, v string) (answer string, err error) {
	switch key {
	case "TargetAlias":
		n.params.TargetAlias = v
		return "", nil
	case "TargetPortalGroupTag":
		n.params.TargetPortalGroupTag = num(v)
		return "", nil
	case "MaxRecvDataSegmentLength":
		if err := keyDefs[key].checkValue(v); err != nil {
			return "", &NegotiationError{key, v, err.Error()}
		}
		n.params.TargetMaxRecvDSL = num(v)
		return "", nil
	}
	if declaredKeys[key] {
		return "", nil
	}
	def, known := keyDefs[key]
	if !known {
		return valNotUnderstood, nil
	}
	if v == valIrrelevant || v == valNotUnderstood || v == valReject {
		if n.offer[key] == "CRC32C" {
			return "", &NegotiationError{key, v, "the target does not do CRC32C digests; connect without them"}
		}
		n.settled[key] = true // the default stays
		return "", nil
	}
	if n.settled[key] {
		return "", &NegotiationError{key, v, "key negotiated twice"}
	}
	if err := def.checkValue(v); err != nil {
		return "", &NegotiationError{key, v, err.Error()}
	}
	offered, ours := n.offer[key]
	if ours {
		// An answer to our offer must be a legal outcome of it.
		if def.rule == ruleList {
			if offered == "CRC32C" && v == "None" {
				return "", &NegotiationError{key, v, "the target does not do CRC32C digests; connect without them"}
			}
			if !listContains(offered, v) {
				return "", &NegotiationError{key, v, "not one of the offered values " + offered}
			}
		} else if want := def.result(offered, v); want != v {
			return "", &NegotiationError{key, v, "not a legal answer to our offer of " + offered}
		}
		n.settled[key] = true
		def.apply(&n.params, v)
		return "", nil
	}
	// The target offers a key of its own: answer with our result.
	own := n.ownValue(key)
	res := def.result(v, own)
	n.settled[key] = true
	if res != valReject {
		def.apply(&n.params, res)
	}
	return res, nil
}

// ownValue is what we would have offered for a key the target raised.
func (n *InitiatorNegotiation) ownValue(key string) string {
	if v, ok := n.offer[key]; ok {
		return v
	}
	switch key {
	case "IFMarker", "OFMarker", "RDMAExtensions":
		return "No"
	case "TaskReporting":
		return "RFC3720"
	case "iSCSIProtocolLevel":
		return "1"
	}
	d := DefaultParams()
	switch key {
	case "MaxBurstLength":
		return strconv.Itoa(int(d.MaxBurstLength))
	case "FirstBurstLength":
		return strconv.Itoa(int(d.FirstBurstLength))
	case "DefaultTime2Wait":
		return "0"
	case "DefaultTime2Retain":
		return "0"
	}
	return ""
}

func listContains(list, v string) bool {
	return slices.Contains(strings.Split(list, ","), v)
}

// Params returns the outcome so far.
func (n *InitiatorNegotiation) Params() Params { return n.params }
