package blockdev

import (
	"errors"
	"fmt"
	"io"
)

// The handshake: fixed newstyle negotiation, ending in the transmission
// phase (NBD_OPT_GO, NBD_OPT_EXPORT_NAME) or a closed connection.

type optResult int

const (
	optContinue optResult = iota // wait for the next option
	optTransmit                  // export chosen: start transmission
	optEnd                       // close the connection
)

// handshake runs the fixed newstyle negotiation.
func (c *nbdConn) handshake() (optResult, error) {
	var hello [18]byte
	be.PutUint64(hello[0:], nbdMagic)
	be.PutUint64(hello[8:], nbdOptMagic)
	be.PutUint16(hello[16:], nbdFlagFixedNewstyle|nbdFlagNoZeroes)
	if _, err := c.nc.Write(hello[:]); err != nil {
		return optEnd, err
	}
	var cf [4]byte
	if _, err := io.ReadFull(c.br, cf[:]); err != nil {
		return optEnd, err
	}
	flags := be.Uint32(cf[:])
	if flags&^(nbdFlagCFixedNewstyle|nbdFlagCNoZeroes) != 0 {
		return optEnd, fmt.Errorf("%w: unknown client flags %#x", errProtocol, flags)
	}
	c.noZeroes = flags&nbdFlagCNoZeroes != 0
	for range nbdMaxOptions {
		opt, data, err := c.readOption()
		if err != nil {
			return optEnd, err
		}
		next, err := c.handleOption(opt, data)
		if err != nil || next != optContinue {
			return next, err
		}
	}
	return optEnd, fmt.Errorf("%w: more than %d options", errProtocol, nbdMaxOptions)
}

func (c *nbdConn) readOption() (uint32, []byte, error) {
	var h [16]byte
	if _, err := io.ReadFull(c.br, h[:]); err != nil {
		return 0, nil, err
	}
	if magic := be.Uint64(h[0:]); magic != nbdOptMagic {
		return 0, nil, fmt.Errorf("%w: bad option magic %#x", errProtocol, magic)
	}
	opt, n := be.Uint32(h[8:]), be.Uint32(h[12:])
	if n > nbdMaxOptionLen {
		return 0, nil, fmt.Errorf("%w: option %d carries %d bytes", errProtocol, opt, n)
	}
	data := make([]byte, n)
	if _, err := io.ReadFull(c.br, data); err != nil {
		return 0, nil, err
	}
	return opt, data, nil
}

func (c *nbdConn) handleOption(opt uint32, data []byte) (optResult, error) {
	c.log.WithField("option", opt).Debug("NBD option")
	switch opt {
	case nbdOptExportName:
		return c.exportName(string(data))
	case nbdOptAbort:
		// The client may hang up without reading the ACK.
		c.optReply(opt, nbdRepAck, nil)
		return optEnd, errClientDone
	case nbdOptList:
		return optContinue, c.list(data)
	case nbdOptInfo, nbdOptGo:
		return c.info(opt, data)
	default:
		// Structured replies, TLS, metadata contexts and anything newer:
		// this server speaks simple replies only.
		return optContinue, c.optReply(opt, nbdRepErrUnsup, []byte("option not supported"))
	}
}

// exportName answers the oldest way to pick an export; it cannot report an
// error, so an unknown name ends the connection.
func (c *nbdConn) exportName(name string) (optResult, error) {
	if !c.srv.exportKnown(name) {
		return optEnd, fmt.Errorf("%w %q", errUnknownExport, name)
	}
	reply := make([]byte, 10, 10+nbdExportNameReplyZero)
	be.PutUint64(reply[0:], uint64(c.srv.io.size))
	be.PutUint16(reply[8:], c.srv.flags)
	if !c.noZeroes {
		reply = reply[:cap(reply)]
	}
	if _, err := c.nc.Write(reply); err != nil {
		return optEnd, err
	}
	return optTransmit, nil
}

func (c *nbdConn) list(data []byte) error {
	if len(data) != 0 {
		return c.optReply(nbdOptList, nbdRepErrInvalid, []byte("NBD_OPT_LIST takes no data"))
	}
	name := c.srv.opts.ExportName
	entry := make([]byte, 4+len(name))
	be.PutUint32(entry, uint32(len(name)))
	copy(entry[4:], name)
	if err := c.optReply(nbdOptList, nbdRepServer, entry); err != nil {
		return err
	}
	return c.optReply(nbdOptList, nbdRepAck, nil)
}

// info answers NBD_OPT_INFO and NBD_OPT_GO. The export and block-size
// information is always sent; name and description when asked for.
func (c *nbdConn) info(opt uint32, data []byte) (optResult, error) {
	name, requests, err := parseInfoRequest(data)
	if err != nil {
		return optContinue, c.optReply(opt, nbdRepErrInvalid, []byte(err.Error()))
	}
	if !c.srv.exportKnown(name) {
		return optContinue, c.optReply(opt, nbdRepErrUnknown, fmt.Appendf(nil, "no export named %q", name))
	}
	replies := [][]byte{c.exportInfo(), c.blockSizeInfo()}
	for _, r := range requests {
		switch {
		case r == nbdInfoName:
			replies = append(replies, infoString(nbdInfoName, name))
		case r == nbdInfoDescription && c.srv.opts.Description != "":
			replies = append(replies, infoString(nbdInfoDescription, c.srv.opts.Description))
		}
	}
	for _, r := range replies {
		if err := c.optReply(opt, nbdRepInfo, r); err != nil {
			return optEnd, err
		}
	}
	if err := c.optReply(opt, nbdRepAck, nil); err != nil {
		return optEnd, err
	}
	if opt == nbdOptGo {
		return optTransmit, nil
	}
	return optContinue, nil
}

func (c *nbdConn) exportInfo() []byte {
	b := make([]byte, 12)
	be.PutUint16(b[0:], nbdInfoExport)
	be.PutUint64(b[2:], uint64(c.srv.io.size))
	be.PutUint16(b[10:], c.srv.flags)
	return b
}

// blockSizeInfo advertises the device block as the minimum, so clients
// that honour it never cause a read-modify-write.
func (c *nbdConn) blockSizeInfo() []byte {
	bs := uint32(c.srv.io.bs)
	b := make([]byte, 14)
	be.PutUint16(b[0:], nbdInfoBlockSize)
	be.PutUint32(b[2:], bs)
	be.PutUint32(b[6:], max(bs, 4096))
	be.PutUint32(b[10:], nbdMaxPayload)
	return b
}

func infoString(typ uint16, s string) []byte {
	b := make([]byte, 2+len(s))
	be.PutUint16(b, typ)
	copy(b[2:], s)
	return b
}

// parseInfoRequest decodes the data of NBD_OPT_INFO and NBD_OPT_GO: a
// 32-bit name length, the name, a 16-bit count and that many 16-bit
// information requests.
func parseInfoRequest(data []byte) (name string, requests []uint16, err error) {
	if len(data) < 6 {
		return "", nil, errors.New("option data too short")
	}
	n := be.Uint32(data)
	if n > nbdMaxNameLen || int(n) > len(data)-6 {
		return "", nil, errors.New("export name length exceeds option data")
	}
	name = string(data[4 : 4+n])
	rest := data[4+n:]
	count := int(be.Uint16(rest))
	rest = rest[2:]
	if len(rest) != 2*count {
		return "", nil, fmt.Errorf("%d information requests announced, %d bytes follow", count, len(rest))
	}
	requests = make([]uint16, count)
	for i := range requests {
		requests[i] = be.Uint16(rest[2*i:])
	}
	return name, requests, nil
}

func (c *nbdConn) optReply(opt, typ uint32, data []byte) error {
	b := make([]byte, 20+len(data))
	be.PutUint64(b[0:], nbdOptReplyMagic)
	be.PutUint32(b[8:], opt)
	be.PutUint32(b[12:], typ)
	be.PutUint32(b[16:], uint32(len(data)))
	copy(b[20:], data)
	_, err := c.nc.Write(b)
	return err
}
