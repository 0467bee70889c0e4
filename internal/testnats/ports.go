package testnats

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// FreePorts returns n distinct loopback ports that were free a moment ago. They are
// chosen below the kernel's ephemeral range: a port handed out for port 0 (a proxy, a
// test server, an outgoing connection) and closed again could be taken by the next
// such socket before the caller listens on it; one outside that range can only be
// taken by another caller choosing the same way, at random, which is rare.
func FreePorts(tb testing.TB, n int) []int {
	tb.Helper()
	lo, hi := 10000, ephemeralLow()
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for tries := 0; len(ports) < n; tries++ {
		if tries > 1000 {
			tb.Fatalf("no free loopback port in %d..%d", lo, hi)
		}
		p := lo + rand.IntN(hi-lo)
		l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue // taken, or already chosen (still held)
		}
		ls = append(ls, l)
		ports = append(ports, p)
	}
	return ports
}

// FreePort returns one port as FreePorts does.
func FreePort(tb testing.TB) int {
	tb.Helper()
	return FreePorts(tb, 1)[0]
}

// ephemeralLow is the first port of the kernel's ephemeral range (32768 when it
// cannot be read, or when it leaves too little room below it).
func ephemeralLow() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	low, err := strconv.Atoi(strings.Fields(string(b) + " x")[0])
	if err != nil || low < 12000 {
		return 32768
	}
	return low
}
