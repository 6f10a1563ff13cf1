package main

import "net"

type listener struct{ net.Listener }

func (l listener) port() int { return l.Addr().(*net.TCPAddr).Port }

func netListen() (listener, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	return listener{l}, err
}
