package harness

import (
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// SlowProxy is a TCP proxy that holds every chunk a client sends for Delay before passing it on,
// which makes a real server slow without touching it. TLS passes through untouched.
type SlowProxy struct {
	Addr   string
	Target string
	delay  atomic.Int64
	ln     net.Listener
	wg     sync.WaitGroup
}

// NewSlowProxy listens on a free 127.0.0.1 port and forwards to target.
func NewSlowProxy(target string, delay time.Duration) (*SlowProxy, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	p := &SlowProxy{Addr: ln.Addr().String(), Target: target, ln: ln}
	p.delay.Store(int64(delay))
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// SetDelay changes the delay for chunks sent from now on.
func (p *SlowProxy) SetDelay(d time.Duration) { p.delay.Store(int64(d)) }

func (p *SlowProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		go p.handle(c)
	}
}

func (p *SlowProxy) handle(c net.Conn) {
	defer c.Close()
	up, err := net.Dial("tcp", p.Target)
	if err != nil {
		return
	}
	defer up.Close()
	go func() { _, _ = io.Copy(c, up); c.Close() }()
	buf := make([]byte, 32<<10)
	for {
		n, err := c.Read(buf)
		if n > 0 {
			time.Sleep(time.Duration(p.delay.Load()))
			if _, werr := up.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// Close stops accepting; open connections end with their peers.
func (p *SlowProxy) Close() { p.ln.Close(); p.wg.Wait() }
