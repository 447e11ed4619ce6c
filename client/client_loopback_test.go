package client

import "testing"

func TestLoopbackTarget(t *testing.T) {
	for target, want := range map[string]bool{
		"127.0.0.1:50051": true, "[::1]:50051": true, "localhost:50051": true, "dns:///localhost:50051": true,
		"passthrough:///127.0.0.1:1": true, "arbiter.internal:50051": false, "10.0.0.7:50051": false,
		"dns:///arbiter.internal:443": false, "127.0.0.1": false,
	} {
		if got := loopbackTarget(target); got != want {
			t.Errorf("loopbackTarget(%q) = %v, want %v", target, got, want)
		}
	}
}
