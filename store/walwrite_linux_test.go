package store

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func walWriterKinds() []string { return []string{"write+fdatasync", "direct"} }

func testWALWriter(f *os.File, kind string) (walWriter, error) {
	if kind == "direct" {
		return newDirectWriter(f, slog.New(slog.DiscardHandler))
	}
	return syncWriter{f}, nil
}

// probeDirectIO says whether the log's direct writer works for a file in dir.
func probeDirectIO(dir string) error {
	f, err := os.OpenFile(filepath.Join(dir, "probe"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	w, err := newDirectWriter(f, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	return w.close()
}

// TestWALUsesDirectIOWhereAvailable: where direct I/O works (ext4, xfs),
// Open uses it, not the fallback.
func TestWALUsesDirectIOWhereAvailable(t *testing.T) {
	dir := directIODir(t)
	db, err := Open(filepath.Join(dir, "otpgate.db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := db.wal.writer.kind(); got != "direct" {
		t.Fatalf("log writer %s, want direct", got)
	}
}

// TestDirectWriterFallsBack: a direct write the kernel refuses (here: an
// offset off the block alignment) is written through the page cache, and
// so is every write after it.
func TestDirectWriterFallsBack(t *testing.T) {
	path := filepath.Join(directIODir(t), "log")
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var logged bytes.Buffer
	a, err := newDirectWriter(f, slog.New(slog.NewTextHandler(&logged, nil)))
	if err != nil {
		t.Fatalf("direct writer: %v", err)
	}
	defer a.close()

	block := alignedBlocks(walBlock)
	for i := range block {
		block[i] = byte(i%251 + 1)
	}
	if err := a.writeDurable(block, 0); err != nil || a.kind() != "direct" {
		t.Fatalf("aligned write: %v, writer %s; want direct", err, a.kind())
	}
	if err := a.writeDurable(block, 100); err != nil {
		t.Fatalf("misaligned write: %v, want it written the portable way", err)
	}
	if a.kind() != "write+fdatasync" {
		t.Fatalf("writer %s after a refused direct write, want write+fdatasync", a.kind())
	}
	if n := strings.Count(logged.String(), "refused a direct write"); n != 1 {
		t.Errorf("the switch logged %d times, want once:\n%s", n, logged.String())
	}
	if err := a.writeDurable(block, 2*walBlock); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) != 3*walBlock || !bytes.Equal(data[:100], block[:100]) ||
		!bytes.Equal(data[100:100+walBlock], block) || !bytes.Equal(data[2*walBlock:], block) {
		t.Fatalf("file content wrong after the fallback (%d bytes)", len(data))
	}
	if n := strings.Count(logged.String(), "level=WARN"); n != 1 {
		t.Errorf("%d warnings after one more write, want the one:\n%s", n, logged.String())
	}
}
