package outbound

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestCheckAddrClasses(t *testing.T) {
	t.Parallel()
	tests := []struct {
		addr  string
		class string // substring of the class; "" means allowed
	}{
		{"10.1.2.3", "private"},
		{"172.16.0.1", "private"},
		{"172.31.255.255", "private"},
		{"172.32.0.1", ""},
		{"192.168.0.1", "private"},
		{"127.0.0.1", "loopback"},
		{"127.255.255.254", "loopback"},
		{"169.254.169.254", "cloud metadata"},
		{"169.254.1.1", "link-local"},
		{"100.64.0.1", "carrier-grade NAT"},
		{"100.127.255.255", "carrier-grade NAT"},
		{"100.128.0.1", ""},
		{"0.0.0.0", "unspecified"},
		{"0.1.2.3", "this network"},
		{"224.0.0.1", "multicast"},
		{"239.255.255.250", "multicast"},
		{"255.255.255.255", "broadcast"},
		{"240.0.0.1", "reserved"},
		{"192.0.0.170", "reserved"},
		{"192.0.2.1", "documentation"},
		{"198.51.100.7", "documentation"},
		{"203.0.113.9", "documentation"},
		{"198.18.0.1", "benchmarking"},
		{"8.8.8.8", ""},
		{"1.1.1.1", ""},
		{"::1", "loopback"},
		{"::", "unspecified"},
		{"fe80::1", "link-local"},
		{"fe80::1%eth0", "link-local"},
		{"fec0::1", "site-local"},
		{"fd00:ec2::254", "cloud metadata"},
		{"fc00::1", "unique-local"},
		{"fdff:ffff::1", "unique-local"},
		{"ff02::1", "multicast"},
		{"2001:db8::1", "documentation"},
		{"3fff::1", "documentation"},
		{"100::1", "discard-only"},
		{"2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"},
		{"::ffff:127.0.0.1", "loopback"},
		{"::ffff:10.0.0.1", "private"},
		{"::ffff:169.254.169.254", "cloud metadata"},
		{"::ffff:8.8.8.8", ""},
		{"::127.0.0.1", "IPv4-compatible address embedding a loopback"},
		{"::8.8.8.8", "IPv4-compatible"},
		{"::ffff:0:127.0.0.1", "IPv4-translated address embedding a loopback"},
		{"64:ff9b::a00:1", "NAT64 address embedding a private"},
		{"64:ff9b::127.0.0.1", "NAT64 address embedding a loopback"},
		{"64:ff9b::169.254.169.254", "NAT64 address embedding a link-local address (cloud metadata"},
		{"64:ff9b::8.8.8.8", ""},
		{"64:ff9b:1::a00:1", "local-use NAT64"},
		{"2002:a00:1::", "6to4 address embedding a private"},
		{"2002:7f00:1::1", "6to4 address embedding a loopback"},
		{"2002:808:808::1", ""},
		{"2001:4860:4860::8888", ""},
		{"2606:4700:4700::1111", ""},
		{"4000::1", "reserved"},
		{"1::1", "reserved"},
	}
	for _, tt := range tests {
		t.Run(tt.addr, func(t *testing.T) {
			t.Parallel()
			err := CheckAddr(netip.MustParseAddr(tt.addr), nil)
			if tt.class == "" {
				if err != nil {
					t.Fatalf("CheckAddr(%s) = %v, want allowed", tt.addr, err)
				}
				return
			}
			if !errors.Is(err, ErrForbiddenAddress) {
				t.Fatalf("CheckAddr(%s) = %v, want ErrForbiddenAddress", tt.addr, err)
			}
			var fe *ForbiddenAddressError
			if !errors.As(err, &fe) || !strings.Contains(fe.Class, tt.class) {
				t.Fatalf("CheckAddr(%s) = %v, want class containing %q", tt.addr, err, tt.class)
			}
			if !strings.Contains(err.Error(), "outbound_allow") {
				t.Errorf("message %q does not say how to allow it", err)
			}
		})
	}
}

func TestCheckAddrAllow(t *testing.T) {
	t.Parallel()
	p := netip.MustParsePrefix
	tests := []struct {
		name  string
		addr  string
		allow []netip.Prefix
		ok    bool
	}{
		{"loopback allowed", "127.0.0.1", []netip.Prefix{p("127.0.0.0/8")}, true},
		{"mapped loopback allowed by v4 prefix", "::ffff:127.0.0.1", []netip.Prefix{p("127.0.0.0/8")}, true},
		{"v6 loopback needs its own prefix", "::1", []netip.Prefix{p("127.0.0.0/8")}, false},
		{"v6 loopback allowed", "::1", []netip.Prefix{p("::1/128")}, true},
		{"one private range only", "10.0.0.7", []netip.Prefix{p("192.168.0.0/16")}, false},
		{"single host", "10.0.0.7", []netip.Prefix{p("10.0.0.7/32")}, true},
		{"neighbour of single host", "10.0.0.8", []netip.Prefix{p("10.0.0.7/32")}, false},
		{"NAT64 needs its own prefix", "64:ff9b::a00:1", []netip.Prefix{p("10.0.0.0/8")}, false},
		{"NAT64 allowed", "64:ff9b::a00:1", []netip.Prefix{p("64:ff9b::/96")}, true},
		{"zoned link-local", "fe80::1%eth0", []netip.Prefix{p("fe80::/10")}, true},
		{"invalid prefix ignored", "127.0.0.1", []netip.Prefix{{}}, false},
		{"metadata in allowed link-local", "169.254.169.254", []netip.Prefix{p("169.254.0.0/16")}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			err := CheckAddr(netip.MustParseAddr(tt.addr), tt.allow)
			if (err == nil) != tt.ok {
				t.Fatalf("CheckAddr(%s, %v) = %v, want ok=%v", tt.addr, tt.allow, err, tt.ok)
			}
		})
	}
}

func TestCheckAddrInvalid(t *testing.T) {
	t.Parallel()
	if err := CheckAddr(netip.Addr{}, []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}); !errors.Is(err, ErrForbiddenAddress) {
		t.Fatalf("zero address: got %v, want ErrForbiddenAddress", err)
	}
}

func TestForbiddenMessage(t *testing.T) {
	t.Parallel()
	err := CheckAddr(netip.MustParseAddr("127.0.0.1"), nil)
	want := "outbound call to a loopback address (127.0.0.1) refused; allow it with outbound_allow"
	if err == nil || err.Error() != want {
		t.Fatalf("got %v, want %q", err, want)
	}
}

func TestCheckDial(t *testing.T) {
	t.Parallel()
	tests := []struct {
		network, address string
		ok               bool
	}{
		{"tcp4", "8.8.8.8:443", true},
		{"tcp6", "[2001:4860:4860::8888]:443", true},
		{"tcp4", "127.0.0.1:80", false},
		{"tcp6", "[::1]:80", false},
		{"tcp6", "[fe80::1%eth0]:80", false},
		{"tcp4", "not-an-address", false},
		{"udp4", "8.8.8.8:53", false},
	}
	for _, tt := range tests {
		t.Run(tt.network+" "+tt.address, func(t *testing.T) {
			t.Parallel()
			err := checkDial(tt.network, tt.address, nil)
			if tt.ok && err != nil {
				t.Fatalf("got %v, want allowed", err)
			}
			if !tt.ok && !errors.Is(err, ErrForbiddenAddress) {
				t.Fatalf("got %v, want ErrForbiddenAddress", err)
			}
		})
	}
}
