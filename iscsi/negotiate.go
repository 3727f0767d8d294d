package iscsi

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Params are the operational parameters a login settled on, with RFC 7143
// defaults for keys that were not negotiated.
type Params struct {
	SessionType  string // "Normal" or "Discovery"
	HeaderDigest bool   // CRC32C
	DataDigest   bool   // CRC32C

	MaxConnections uint32
	InitialR2T     bool
	ImmediateData  bool

	// MaxRecvDataSegmentLength is declared by each side for what it can
	// receive: InitiatorMaxRecvDSL bounds the target's PDUs (Data-In, text),
	// and TargetMaxRecvDSL bounds ours (Data-Out, immediate data).
	InitiatorMaxRecvDSL uint32
	TargetMaxRecvDSL    uint32

	MaxBurstLength      uint32
	FirstBurstLength    uint32
	DefaultTime2Wait    uint32
	DefaultTime2Retain  uint32
	MaxOutstandingR2T   uint32
	DataPDUInOrder      bool
	DataSequenceInOrder bool
	ErrorRecoveryLevel  uint32

	TargetAlias          string
	TargetPortalGroupTag uint32
}

// DefaultParams returns the RFC 7143 defaults.
func DefaultParams() Params {
	return Params{
		SessionType: "Normal", MaxConnections: 1, InitialR2T: true, ImmediateData: true,
		InitiatorMaxRecvDSL: DefaultMaxRecvDataSegmentLength, TargetMaxRecvDSL: DefaultMaxRecvDataSegmentLength,
		MaxBurstLength: 262144, FirstBurstLength: 65536, DefaultTime2Wait: 2, DefaultTime2Retain: 20,
		MaxOutstandingR2T: 1, DataPDUInOrder: true, DataSequenceInOrder: true,
	}
}

// How a key's result is computed (RFC 7143 section 6.2).
type rule int

const (
	ruleDeclarative rule = iota
	ruleList             // the responder picks the first value it supports
	ruleAnd              // boolean AND
	ruleOr               // boolean OR
	ruleMin              // numerical minimum
	ruleMax              // numerical maximum
)

type keyDef struct {
	rule      rule
	lo, hi    uint32 // numerical range
	discovery bool   // relevant in discovery sessions
	apply     func(p *Params, v string)
}

func num(v string) uint32 { n, _ := strconv.ParseUint(v, 10, 32); return uint32(n) }
func yes(v string) bool   { return v == "Yes" }

var keyDefs = map[string]keyDef{
	"HeaderDigest": {rule: ruleList, discovery: true, apply: func(p *Params, v string) { p.HeaderDigest = v == "CRC32C" }},
	"DataDigest":   {rule: ruleList, discovery: true, apply: func(p *Params, v string) { p.DataDigest = v == "CRC32C" }},
	"MaxConnections": {rule: ruleMin, lo: 1, hi: 65535,
		apply: func(p *Params, v string) { p.MaxConnections = num(v) }},
	"InitialR2T":               {rule: ruleOr, apply: func(p *Params, v string) { p.InitialR2T = yes(v) }},
	"ImmediateData":            {rule: ruleAnd, apply: func(p *Params, v string) { p.ImmediateData = yes(v) }},
	"MaxRecvDataSegmentLength": {rule: ruleDeclarative, lo: 512, hi: MaxDataSegmentLength, discovery: true},
	"MaxBurstLength": {rule: ruleMin, lo: 512, hi: MaxDataSegmentLength,
		apply: func(p *Params, v string) { p.MaxBurstLength = num(v) }},
	"FirstBurstLength": {rule: ruleMin, lo: 512, hi: MaxDataSegmentLength,
		apply: func(p *Params, v string) { p.FirstBurstLength = num(v) }},
	"DefaultTime2Wait": {rule: ruleMax, lo: 0, hi: 3600, discovery: true,
		apply: func(p *Params, v string) { p.DefaultTime2Wait = num(v) }},
	"DefaultTime2Retain": {rule: ruleMin, lo: 0, hi: 3600, discovery: true,
		apply: func(p *Params, v string) { p.DefaultTime2Retain = num(v) }},
	"MaxOutstandingR2T": {rule: ruleMin, lo: 1, hi: 65535,
		apply: func(p *Params, v string) { p.MaxOutstandingR2T = num(v) }},
	"DataPDUInOrder":      {rule: ruleOr, apply: func(p *Params, v string) { p.DataPDUInOrder = yes(v) }},
	"DataSequenceInOrder": {rule: ruleOr, apply: func(p *Params, v string) { p.DataSequenceInOrder = yes(v) }},
	"ErrorRecoveryLevel": {rule: ruleMin, lo: 0, hi: 2, discovery: true,
		apply: func(p *Params, v string) { p.ErrorRecoveryLevel = num(v) }},
	"IFMarker":       {rule: ruleAnd, discovery: true, apply: func(*Params, string) {}},
	"OFMarker":       {rule: ruleAnd, discovery: true, apply: func(*Params, string) {}},
	"RDMAExtensions": {rule: ruleAnd, discovery: true, apply: func(*Params, string) {}},
	"TaskReporting":  {rule: ruleList, apply: func(*Params, string) {}},
	"iSCSIProtocolLevel": {rule: ruleMin, lo: 0, hi: 31, discovery: true,
		apply: func(*Params, string) {}},
}

// Keys that identify the session rather than being negotiated.
var declaredKeys = map[string]bool{
	"InitiatorName": true, "InitiatorAlias": true, "TargetName": true, "TargetAlias": true,
	"TargetAddress": true, "TargetPortalGroupTag": true, "SessionType": true, "AuthMethod": true,
	"SendTargets": true,
}

// Values a responder may answer instead of a result.
const (
	valReject        = "Reject"
	valIrrelevant    = "Irrelevant"
	valNotUnderstood = "NotUnderstood"
)

// checkValue validates a proposed value against a key's syntax and range.
func (d keyDef) checkValue(v string) error {
	switch d.rule {
	case ruleAnd, ruleOr:
		if v != "Yes" && v != "No" {
			return fmt.Errorf("%q is not Yes or No", v)
		}
	case ruleMin, ruleMax, ruleDeclarative:
		n, err := strconv.ParseUint(v, 10, 32)
		if err != nil || uint32(n) < d.lo || uint32(n) > d.hi {
			return fmt.Errorf("%q is outside %d..%d", v, d.lo, d.hi)
		}
	case ruleList:
		if v == "" {
			return fmt.Errorf("empty list")
		}
	}
	return nil
}

// result computes the outcome of an offer from one side and the other
// side's own value, for the rules where both sides hold a value.
func (d keyDef) result(offer, own string) string {
	switch d.rule {
	case ruleAnd:
		if yes(offer) && yes(own) {
			return "Yes"
		}
		return "No"
	case ruleOr:
		if yes(offer) || yes(own) {
			return "Yes"
		}
		return "No"
	case ruleMin:
		return strconv.FormatUint(uint64(min(num(offer), num(own))), 10)
	case ruleMax:
		return strconv.FormatUint(uint64(max(num(offer), num(own))), 10)
	case ruleList:
		ours := strings.Split(own, ",")
		for _, v := range strings.Split(offer, ",") {
			if slices.Contains(ours, v) {
				return v
			}
		}
		return valReject
	}
	return own
}

// NegotiationError is a peer that broke the negotiation rules.
type NegotiationError struct {
	Key, Value, Reason string
}

func (e *NegotiationError) Error() string {
	return fmt.Sprintf("iscsi: negotiation of %s=%s: %s", e.Key, truncate([]byte(e.Value)), e.Reason)
}

// valuesOf turns a Text into a map, refusing a key given twice.
func valuesOf(t Text) (map[string]string, error) {
	m := make(map[string]string, len(t))
	for _, p := range t {
		if _, dup := m[p.Key]; dup {
			return nil, &NegotiationError{p.Key, p.Value, "key sent twice"}
		}
		m[p.Key] = p.Value
	}
	return m, nil
}

// checkBursts enforces FirstBurstLength <= MaxBurstLength.
func (p *Params) checkBursts() error {
	if p.FirstBurstLength > p.MaxBurstLength {
		return &NegotiationError{"FirstBurstLength", strconv.Itoa(int(p.FirstBurstLength)),
			fmt.Sprintf("exceeds MaxBurstLength %d", p.MaxBurstLength)}
	}
	return nil
}
