package hosttune

import (
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// ethtool reads NIC settings with the SIOCETHTOOL ioctl, the same calls
// `ethtool -a` and `ethtool -k` make.
type ethtool struct{ fd int }

func openEthtool() (*ethtool, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket for ethtool: %w", err)
	}
	return &ethtool{fd: fd}, nil
}

func (e *ethtool) Close() error { return unix.Close(e.fd) }

// ifreqData is struct ifreq with its union used as a pointer to an ethtool
// command, padded to the kernel's 40 bytes.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [40 - unix.IFNAMSIZ - unsafe.Sizeof(uintptr(0))]byte
}

func (e *ethtool) ioctl(nic string, cmd unsafe.Pointer) error {
	if len(nic) >= unix.IFNAMSIZ {
		return fmt.Errorf("NIC name %q too long", nic)
	}
	var ifr ifreqData
	copy(ifr.name[:], nic)
	ifr.data = cmd
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(e.fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	if errno != 0 {
		return errno
	}
	return nil
}

// Pause reads 802.3x flow control (ETHTOOL_GPAUSEPARAM).
func (e *ethtool) Pause(nic string) (Pause, error) {
	var p struct{ cmd, autoneg, rx, tx uint32 }
	p.cmd = unix.ETHTOOL_GPAUSEPARAM
	if err := e.ioctl(nic, unsafe.Pointer(&p)); err != nil {
		return Pause{}, describeEthtoolErr(err)
	}
	return Pause{Autoneg: p.autoneg != 0, RX: p.rx != 0, TX: p.tx != 0}, nil
}

// GRO reads whether generic receive offload is on (ETHTOOL_GGRO).
func (e *ethtool) GRO(nic string) (bool, error) {
	var v struct{ cmd, data uint32 }
	v.cmd = unix.ETHTOOL_GGRO
	if err := e.ioctl(nic, unsafe.Pointer(&v)); err != nil {
		return false, describeEthtoolErr(err)
	}
	return v.data != 0, nil
}

func describeEthtoolErr(err error) error {
	if errors.Is(err, unix.EOPNOTSUPP) {
		return errors.New("the driver does not support it")
	}
	return err
}
