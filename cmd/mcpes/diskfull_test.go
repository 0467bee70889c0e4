package main

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/mcpes/mcpes/config"
)

// tinyDisk mounts a 2 MiB tmpfs for the test (root only: CI runs as root).
func tinyDisk(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs needs root (CI runs as root)")
	}
	dir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Fatalf("mount tmpfs: %v: %s", err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("umount", "-l", dir).CombinedOutput(); err != nil {
			t.Errorf("umount: %v: %s", err, out)
		}
	})
	return dir
}

func TestMain_DiskFullAnswers507AndNotReady(t *testing.T) {
	// given the service with its data directory on a 2 MiB disk
	disk := tinyDisk(t)
	_, base := runService(t, &config.Config{DataDir: disk + "/data", Listen: "127.0.0.1:0"})

	// when servers with large descriptions are registered until a write fails, the
	// disk is then filled to the last byte, and servers are registered until one
	// fails again (bbolt reuses pages it freed, so a write or two may still fit)
	desc := strings.Repeat("d", 4000)
	status := 0
	put := func(i int) {
		body := fmt.Sprintf(`{"type":"sse","url":"http://127.0.0.1:1/sse","startup":false,"description":%q}`, desc)
		req, _ := http.NewRequest(http.MethodPut, fmt.Sprintf("%s/v1/servers/s%d", base, i), strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		status = res.StatusCode
		if status != http.StatusCreated && status != http.StatusInsufficientStorage {
			t.Fatalf("put s%d: status %d", i, status)
		}
	}
	for i := 0; i < 2000 && status != http.StatusInsufficientStorage; i++ {
		put(i)
	}
	fillDisk(t, disk)
	status = 0
	for i := 2001; i < 2100 && status != http.StatusInsufficientStorage; i++ {
		put(i)
	}

	// then the failing write is a 507, and /readyz is 503 naming the storage
	if status != http.StatusInsufficientStorage {
		t.Fatalf("the disk never filled (last status %d)", status)
	}
	if code := get(t, base+"/readyz"); code != http.StatusServiceUnavailable {
		t.Fatalf("readyz %d after a full disk", code)
	}
	if body := getBody(t, base+"/readyz"); !strings.Contains(body, `"storage":"the event log cannot be written`) ||
		!strings.Contains(body, "no space left") {
		t.Fatalf("readyz detail: %s", body)
	}
}

// fillDisk writes a file into dir until the disk is full.
func fillDisk(t *testing.T, dir string) {
	t.Helper()
	f, err := os.Create(dir + "/filler")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	block := make([]byte, 4096)
	for {
		if _, err := f.Write(block); err != nil {
			break
		}
	}
	for { // then byte by byte, into the last partial block
		if _, err := f.Write(block[:1]); err != nil {
			return
		}
	}
}
