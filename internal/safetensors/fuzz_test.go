package safetensors

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"
)

// FuzzParse: any bytes are a valid file or an error, never a panic or an
// allocation beyond the input; what parses round-trips through WriteFile,
// and ReadFile/ReadHeader agree with Parse.
func FuzzParse(f *testing.F) {
	good, _ := FromFloat32([]int64{2, 2}, []float32{1, 2, 3, 4})
	dir := f.TempDir()
	path := filepath.Join(dir, "seed.safetensors")
	if err := WriteFile(path, map[string]Tensor{"w": good}, map[string]string{"format": "pt"}); err != nil {
		f.Fatal(err)
	}
	seed, _ := os.ReadFile(path)
	f.Add(seed)
	huge := make([]byte, 8)
	binary.LittleEndian.PutUint64(huge, 1<<62)
	f.Add(huge)
	f.Add([]byte("\x10\x00\x00\x00\x00\x00\x00\x00{\"a\":{\"dtype\":\"F32\",\"shape\":[1000000000,1000000000],\"data_offsets\":[0,4]}}"))
	f.Fuzz(func(t *testing.T, b []byte) {
		file, err := Parse(b)
		p := filepath.Join(t.TempDir(), "f.safetensors")
		if werr := os.WriteFile(p, b, 0o644); werr != nil {
			t.Fatal(werr)
		}
		fromDisk, derr := ReadFile(p)
		hdr, herr := ReadHeader(p)
		if (err == nil) != (derr == nil) || (err == nil) != (herr == nil) {
			t.Fatalf("Parse: %v, ReadFile: %v, ReadHeader: %v", err, derr, herr)
		}
		if err != nil {
			return
		}
		if len(fromDisk.Tensors) != len(file.Tensors) || len(hdr.Tensors) != len(file.Tensors) {
			t.Fatalf("tensor counts differ: %d %d %d", len(file.Tensors), len(fromDisk.Tensors), len(hdr.Tensors))
		}
		out := filepath.Join(t.TempDir(), "out.safetensors")
		if err := WriteFile(out, file.Tensors, file.Metadata); err != nil {
			t.Fatalf("a parsed file does not write back: %v", err)
		}
		again, err := ReadFile(out)
		if err != nil {
			t.Fatalf("a written file does not read back: %v", err)
		}
		for name, ten := range file.Tensors {
			if string(again.Tensors[name].Data) != string(ten.Data) {
				t.Fatalf("tensor %q changed on the round trip", name)
			}
		}
	})
}
