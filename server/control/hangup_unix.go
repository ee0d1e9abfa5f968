//go:build linux || darwin || freebsd || netbsd || openbsd

package control

import (
	"errors"
	"net"
	"syscall"
)

var errHungUp = errors.New("the agent hung up")

// hungUp reports whether the peer of a hijacked connection has closed it,
// without reading anything or waiting: a stream is never read, so without
// this a gone agent would only be noticed when a write failed.
func hungUp(conn net.Conn) bool {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	closed := false
	var b [1]byte
	err = raw.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		closed = n == 0 && err == nil || err != nil && err != syscall.EAGAIN && err != syscall.EINTR
		return true // never wait for data
	})
	return closed || err != nil
}
