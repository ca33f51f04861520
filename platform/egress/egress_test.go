package egress_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/vrsky/vrsky/platform/egress"
)

func TestAllows(t *testing.T) {
	for _, tc := range []struct {
		ip                   string
		private, public, all bool
	}{
		{"93.184.215.14", true, true, true},
		{"2606:4700::1111", true, true, true},
		{"127.0.0.1", true, false, true},
		{"::1", true, false, true},
		{"10.1.2.3", true, false, true},
		{"192.168.0.10", true, false, true},
		{"172.16.5.5", true, false, true},
		{"fd00::1", true, false, true},
		{"169.254.169.254", false, false, true}, // cloud metadata
		{"::ffff:169.254.169.254", false, false, true},
		{"fe80::1", false, false, true},
		{"0.0.0.0", false, false, true},
		{"::", false, false, true},
		{"224.0.0.1", false, false, true},
		{"ff02::1", false, false, true},
	} {
		ip := netip.MustParseAddr(tc.ip)
		for _, p := range []struct {
			policy egress.Policy
			want   bool
		}{{egress.Private, tc.private}, {egress.Public, tc.public}, {egress.All, tc.all}} {
			if got := p.policy.Allows(ip); got != p.want {
				t.Errorf("%s allows %s = %v, want %v", p.policy, tc.ip, got, p.want)
			}
		}
	}
}

func TestParse(t *testing.T) {
	for _, s := range []string{"private", "public", "all"} {
		p, err := egress.Parse(s)
		if err != nil || p.String() != s {
			t.Errorf("Parse(%q) = %v, %v", s, p, err)
		}
	}
	if _, err := egress.Parse("open"); err == nil {
		t.Error("Parse(open) succeeded")
	}
}

// The policy holds on a real dial: a listener on loopback is refused
// under Public, with ErrDenied, and reached under Private.
func TestControlDials(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, tc := range []struct {
		policy egress.Policy
		denied bool
	}{{egress.Public, true}, {egress.Private, false}, {egress.All, false}} {
		d := net.Dialer{Control: tc.policy.Control}
		c, err := d.DialContext(ctx, "tcp", ln.Addr().String())
		if c != nil {
			c.Close()
		}
		if errors.Is(err, egress.ErrDenied) != tc.denied || (!tc.denied && err != nil) {
			t.Errorf("%s dialling %s: %v, want denied=%v", tc.policy, ln.Addr(), err, tc.denied)
		}
	}
}
