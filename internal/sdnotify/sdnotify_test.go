package sdnotify

import (
	"fmt"
	"net"
	"os"
	"path/filepath"
	"testing"
)

func TestNotify(t *testing.T) {
	tests := []struct {
		name string
		addr string
	}{
		{"path", filepath.Join(t.TempDir(), "notify")},
		{"abstract", fmt.Sprintf("@rootd-sdnotify-test-%d", os.Getpid())},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ln, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: tc.addr, Net: "unixgram"})
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			t.Setenv("NOTIFY_SOCKET", tc.addr)
			n, err := FromEnv()
			if err != nil {
				t.Fatal(err)
			}
			if _, ok := os.LookupEnv("NOTIFY_SOCKET"); ok {
				t.Error("NOTIFY_SOCKET left for children to inherit")
			}
			for _, msg := range []string{Ready, Stopping} {
				if err := n.Notify(msg); err != nil {
					t.Fatal(err)
				}
				buf := make([]byte, 256)
				k, err := ln.Read(buf)
				if err != nil {
					t.Fatal(err)
				}
				if got := string(buf[:k]); got != msg {
					t.Errorf("received %q, want %q", got, msg)
				}
			}
		})
	}
}

func TestNoSocket(t *testing.T) {
	os.Unsetenv("NOTIFY_SOCKET")
	n, err := FromEnv()
	if err != nil || n != nil {
		t.Fatalf("FromEnv without NOTIFY_SOCKET = %v, %v; want nil, nil", n, err)
	}
	if err := n.Notify(Ready); err != nil {
		t.Errorf("nil Notifier: %v", err)
	}
	for _, bad := range []string{"relative", "@", "", "vsock:2:1"} {
		if _, err := New(bad); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
	// A socket nobody listens on is an error the caller can log.
	n, _ = New(filepath.Join(t.TempDir(), "absent"))
	if err := n.Notify(Ready); err == nil {
		t.Error("Notify to an absent socket succeeded")
	}
}
