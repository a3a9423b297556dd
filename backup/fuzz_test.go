package backup_test

import (
	"archive/tar"
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"shortener/backup"
)

// FuzzParseManifest: any bytes give a manifest or an error, never a
// panic, and an accepted manifest names only files inside the backup.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"version":1,"id":"x","streams":[{"name":"LINKS_A","config":{"name":"LINKS_A"},"file":"streams/LINKS_A.snap","sha256":"` + strings.Repeat("0", 64) + `"}],"projections":[{"region":"a","file":"projections/a.tar","sha256":"` + strings.Repeat("a", 64) + `"}]}`))
	f.Add([]byte(`{"version":1,"streams":[{"name":"X","config":{"name":"X"},"file":"../x","sha256":""}]}`))
	f.Add([]byte(`{"version":2}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := backup.ParseManifest(data)
		if err != nil {
			return
		}
		for _, s := range m.Streams {
			if !filepath.IsLocal(s.File) {
				t.Fatalf("accepted file %q outside the backup", s.File)
			}
		}
		for _, p := range m.Projections {
			if !filepath.IsLocal(p.File) || !filepath.IsLocal(p.Region) {
				t.Fatalf("accepted projection %q %q outside the backup", p.Region, p.File)
			}
		}
	})
}

func tarOf(entries map[string]string) []byte {
	var b bytes.Buffer
	tw := tar.NewWriter(&b)
	for name, body := range entries {
		tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: tar.TypeReg})
		tw.Write([]byte(body))
	}
	tw.Close()
	return b.Bytes()
}

// FuzzUntar: a projection tar from anywhere never writes outside its
// directory and never panics.
func FuzzUntar(f *testing.F) {
	f.Add(tarOf(map[string]string{"MANIFEST-000001": "m", "000002.sst": "s"}))
	f.Add(tarOf(map[string]string{"../escape": "x"}))
	f.Add(tarOf(map[string]string{"/abs": "x"}))
	f.Add([]byte("not a tar"))
	root := f.TempDir()
	f.Fuzz(func(t *testing.T, data []byte) {
		parent, err := os.MkdirTemp(root, "")
		if err != nil {
			t.Fatal(err)
		}
		defer os.RemoveAll(parent)
		dir := filepath.Join(parent, "store")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		_ = backup.Untar(bytes.NewReader(data), dir)
		entries, _ := os.ReadDir(parent)
		if len(entries) != 1 || entries[0].Name() != "store" {
			t.Fatalf("untar wrote outside its directory: %v", entries)
		}
	})
}
