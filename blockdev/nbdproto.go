package blockdev

// Wire constants of the NBD protocol (NetworkBlockDevice/nbd, doc/proto.md).
// Every field is big-endian.

const (
	nbdMagic            = 0x4e42444d41474943 // "NBDMAGIC"
	nbdOptMagic         = 0x49484156454f5054 // "IHAVEOPT"
	nbdOptReplyMagic    = 0x0003e889045565a9
	nbdRequestMagic     = 0x25609513
	nbdSimpleReplyMagic = 0x67446698
)

// Handshake flags (server) and client flags.
const (
	nbdFlagFixedNewstyle  = 1 << 0
	nbdFlagNoZeroes       = 1 << 1
	nbdFlagCFixedNewstyle = 1 << 0
	nbdFlagCNoZeroes      = 1 << 1
)

// Options.
const (
	nbdOptExportName       = 1
	nbdOptAbort            = 2
	nbdOptList             = 3
	nbdOptInfo             = 6
	nbdOptGo               = 7
	nbdOptStructuredReply  = 8
	nbdRepAck              = 1
	nbdRepServer           = 2
	nbdRepInfo             = 3
	nbdRepErrUnsup         = 1<<31 + 1
	nbdRepErrInvalid       = 1<<31 + 3
	nbdRepErrUnknown       = 1<<31 + 6
	nbdInfoExport          = 0
	nbdInfoName            = 1
	nbdInfoDescription     = 2
	nbdInfoBlockSize       = 3
	nbdExportNameReplyZero = 124 // reserved zero bytes after NBD_OPT_EXPORT_NAME's reply
)

// Transmission flags.
const (
	nbdFlagHasFlags        = 1 << 0
	nbdFlagReadOnly        = 1 << 1
	nbdFlagSendFlush       = 1 << 2
	nbdFlagSendFUA         = 1 << 3
	nbdFlagSendTrim        = 1 << 5
	nbdFlagSendWriteZeroes = 1 << 6
	nbdFlagCanMultiConn    = 1 << 8
)

// Commands and command flags.
const (
	nbdCmdRead        = 0
	nbdCmdWrite       = 1
	nbdCmdDisc        = 2
	nbdCmdFlush       = 3
	nbdCmdTrim        = 4
	nbdCmdWriteZeroes = 6
	nbdCmdFlagFUA     = 1 << 0
	nbdCmdFlagNoHole  = 1 << 1
)

// Errors in simple replies (Linux errno values, as the protocol fixes them).
const (
	nbdEPERM  = 1
	nbdEIO    = 5
	nbdEINVAL = 22
	nbdENOSPC = 28
)

const (
	// nbdMaxPayload bounds a single READ or WRITE; the protocol suggests
	// clients stay at or under 32 MiB without asking the server.
	nbdMaxPayload = 32 << 20
	// nbdMaxOptionLen bounds option data; the longest legal option (GO with
	// a 4096-byte name and every info request) is far shorter.
	nbdMaxOptionLen = 16 << 10
	// nbdMaxOptions bounds option haggling, so a client cannot hold a
	// connection in the handshake forever.
	nbdMaxOptions = 64
	nbdMaxNameLen = 4096
)

const (
	nbdRequestSize = 28 // magic, flags, type, handle, offset, length
	nbdReplySize   = 16 // magic, error, handle
)
