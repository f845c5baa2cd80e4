package safetensors

import (
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// handMade builds a file byte by byte, independently of WriteFile.
func handMade(header string, data []byte) []byte {
	b := make([]byte, 8, 8+len(header)+len(data))
	binary.LittleEndian.PutUint64(b, uint64(len(header)))
	b = append(b, header...)
	return append(b, data...)
}

func TestParseHandMade(t *testing.T) {
	data := make([]byte, 0, 16)
	for _, v := range []float32{1, -2.5} {
		data = binary.LittleEndian.AppendUint32(data, math.Float32bits(v))
	}
	data = binary.LittleEndian.AppendUint16(data, 0x3c00) // F16 1.0
	data = binary.LittleEndian.AppendUint16(data, 0xc000) // F16 -2.0
	data = binary.LittleEndian.AppendUint16(data, 0x3f80) // BF16 1.0
	data = binary.LittleEndian.AppendUint16(data, 0x0001) // F16 smallest subnormal
	hdr := `{"__metadata__":{"format":"pt"},"a":{"dtype":"F32","shape":[1,2],"data_offsets":[0,8]},` +
		`"h":{"dtype":"F16","shape":[2],"data_offsets":[8,12]},"b":{"dtype":"BF16","shape":[],"data_offsets":[12,14]},` +
		`"s":{"dtype":"F16","shape":[1],"data_offsets":[14,16]}}`
	f, err := Parse(handMade(hdr, data))
	if err != nil {
		t.Fatal(err)
	}
	if f.Metadata["format"] != "pt" {
		t.Fatalf("metadata = %v", f.Metadata)
	}
	for name, want := range map[string][]float32{"a": {1, -2.5}, "h": {1, -2}, "b": {1}, "s": {float32(math.Ldexp(1, -24))}} {
		got, err := f.Tensors[name].Float32()
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s = %v, want %v", name, got, want)
		}
	}
	if !reflect.DeepEqual(f.Tensors["a"].Shape, []int64{1, 2}) {
		t.Errorf("shape of a = %v", f.Tensors["a"].Shape)
	}
}

func TestRoundTrip(t *testing.T) {
	a, _ := FromFloat32([]int64{2, 3}, []float32{1, 2, 3, 4, 5, 6})
	b, _ := FromFloat32([]int64{1}, []float32{float32(math.Pi)})
	path := filepath.Join(t.TempDir(), "model.safetensors")
	if err := WriteFile(path, map[string]Tensor{"layer.weight": a, "layer.bias": b}, map[string]string{"format": "pt"}); err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(path)
	if n := binary.LittleEndian.Uint64(raw); (8+n)%8 != 0 {
		t.Errorf("data does not start 8-byte aligned (header %d bytes)", n)
	}
	f, err := ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := f.Tensors["layer.weight"].Float32()
	if !reflect.DeepEqual(got, []float32{1, 2, 3, 4, 5, 6}) || !reflect.DeepEqual(f.Tensors["layer.weight"].Shape, []int64{2, 3}) {
		t.Fatalf("layer.weight = %v %v", got, f.Tensors["layer.weight"].Shape)
	}
	if f.Metadata["format"] != "pt" || len(f.Tensors) != 2 {
		t.Fatalf("metadata %v, %d tensors", f.Metadata, len(f.Tensors))
	}
	if _, err := FromFloat32([]int64{2, 2}, []float32{1}); err == nil {
		t.Fatal("FromFloat32 accepted a shape that does not match its values")
	}
}

func TestCorruptFiles(t *testing.T) {
	good := `{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}}`
	cases := map[string]struct {
		file []byte
		want string
	}{
		"short":          {[]byte{1, 2}, "shorter than the 8-byte header"},
		"huge header":    {handMade(good, make([]byte, 8))[:20], "exceeds the file"},
		"bad json":       {handMade(`{"a":`, nil), "not valid JSON"},
		"truncated data": {handMade(good, make([]byte, 4)), "outside the 4 data bytes"},
		"wrong size":     {handMade(`{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}`, make([]byte, 8)), `tensor "a": F32[3] needs 12 bytes`},
		"unknown dtype":  {handMade(`{"a":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}}`, make([]byte, 8)), `unknown dtype "Q4"`},
		"overlap":        {handMade(`{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}`, make([]byte, 8)), "overlap"},
	}
	for name, c := range cases {
		_, err := Parse(c.file)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: got %v, want an error containing %q", name, err, c.want)
		}
	}
	if _, err := ReadFile(filepath.Join(t.TempDir(), "missing.safetensors")); err == nil || !strings.Contains(err.Error(), "missing.safetensors") {
		t.Errorf("missing file: %v", err)
	}
}
