package tokenize

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// SentencePiece piece types (sentencepiece_model.proto).
const (
	spmNormal      = 1
	spmUnknown     = 2
	spmControl     = 3
	spmUserDefined = 4
	spmUnused      = 5
	spmByte        = 6
)

// spmModel is what xling needs of a SentencePiece ModelProto.
type spmModel struct {
	Pieces []spmPiece
	// NormalizerSpec
	Name                   string
	PrecompiledCharsmap    []byte
	AddDummyPrefix         bool
	RemoveExtraWhitespaces bool
	EscapeWhitespaces      bool
	ModelType              int // TrainerSpec.model_type: 1 unigram, 2 bpe
}

type spmPiece struct {
	Piece string
	Score float32
	Type  int
}

// parseSPM decodes a SentencePiece .model file: a protocol buffer, read here
// field by field since only a handful of fields matter.
func parseSPM(b []byte) (*spmModel, error) {
	m := &spmModel{AddDummyPrefix: true, RemoveExtraWhitespaces: true, EscapeWhitespaces: true, ModelType: 1}
	err := protoFields(b, func(field int, wire int, v uint64, data []byte) error {
		switch field {
		case 1: // pieces
			p := spmPiece{Type: spmNormal}
			if err := protoFields(data, func(f, w int, v uint64, d []byte) error {
				switch f {
				case 1:
					p.Piece = string(d)
				case 2:
					p.Score = math.Float32frombits(uint32(v))
				case 3:
					p.Type = int(v)
				}
				return nil
			}); err != nil {
				return fmt.Errorf("piece %d: %w", len(m.Pieces), err)
			}
			m.Pieces = append(m.Pieces, p)
		case 2: // trainer_spec
			return protoFields(data, func(f, w int, v uint64, d []byte) error {
				if f == 3 {
					m.ModelType = int(v)
				}
				return nil
			})
		case 3: // normalizer_spec
			return protoFields(data, func(f, w int, v uint64, d []byte) error {
				switch f {
				case 1:
					m.Name = string(d)
				case 2:
					m.PrecompiledCharsmap = append([]byte(nil), d...)
				case 3:
					m.AddDummyPrefix = v != 0
				case 4:
					m.RemoveExtraWhitespaces = v != 0
				case 5:
					m.EscapeWhitespaces = v != 0
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("not a SentencePiece model: %w", err)
	}
	if len(m.Pieces) == 0 {
		return nil, errors.New("not a SentencePiece model: no pieces")
	}
	return m, nil
}

// protoFields walks one protocol-buffer message, calling fn for each field
// with its varint or fixed32/64 value, or its bytes for length-delimited
// fields.
func protoFields(b []byte, fn func(field, wire int, v uint64, data []byte) error) error {
	for len(b) > 0 {
		key, n := binary.Uvarint(b)
		if n <= 0 {
			return errors.New("bad field key")
		}
		b = b[n:]
		field, wire := int(key>>3), int(key&7)
		var v uint64
		var data []byte
		switch wire {
		case 0:
			v, n = binary.Uvarint(b)
			if n <= 0 {
				return fmt.Errorf("field %d: bad varint", field)
			}
			b = b[n:]
		case 1:
			if len(b) < 8 {
				return fmt.Errorf("field %d: truncated", field)
			}
			v, b = binary.LittleEndian.Uint64(b), b[8:]
		case 2:
			l, n := binary.Uvarint(b)
			if n <= 0 || l > uint64(len(b)-n) {
				return fmt.Errorf("field %d: bad length", field)
			}
			data, b = b[n:n+int(l)], b[n+int(l):]
		case 5:
			if len(b) < 4 {
				return fmt.Errorf("field %d: truncated", field)
			}
			v, b = uint64(binary.LittleEndian.Uint32(b)), b[4:]
		default:
			return fmt.Errorf("field %d: unsupported wire type %d", field, wire)
		}
		if err := fn(field, wire, v, data); err != nil {
			return err
		}
	}
	return nil
}

// SentencePieceToJSON converts a SentencePiece unigram .model into a
// HuggingFace tokenizer.json laid out as XLM-RoBERTa's: <s> <pad> </s> <unk>
// first (fairseq's order), the model's pieces, then <mask>; the
// precompiled normaliser; Metaspace pre-tokenisation; "<s> $A </s>".
func SentencePieceToJSON(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("convert SentencePiece model: %w", err)
	}
	m, err := parseSPM(b)
	if err != nil {
		return nil, fmt.Errorf("convert %s: %w", path, err)
	}
	if m.ModelType != 1 {
		return nil, fmt.Errorf("convert %s: model type %d is not unigram", path, m.ModelType)
	}
	vocab := [][]any{{"<s>", 0.0}, {"<pad>", 0.0}, {"</s>", 0.0}, {"<unk>", 0.0}}
	for _, p := range m.Pieces {
		if p.Type == spmNormal || p.Type == spmUserDefined || p.Type == spmUnused {
			vocab = append(vocab, []any{p.Piece, float64(p.Score)})
		}
	}
	vocab = append(vocab, []any{"<mask>", 0.0})
	added := []map[string]any{}
	for i, s := range []string{"<s>", "<pad>", "</s>", "<unk>"} {
		added = append(added, map[string]any{"id": i, "content": s, "single_word": false, "lstrip": false, "rstrip": false, "normalized": false, "special": true})
	}
	added = append(added, map[string]any{"id": len(vocab) - 1, "content": "<mask>", "single_word": false, "lstrip": true, "rstrip": false, "normalized": false, "special": true})
	normalizers := []any{}
	if len(m.PrecompiledCharsmap) > 0 {
		normalizers = append(normalizers, map[string]any{"type": "Precompiled", "precompiled_charsmap": base64.StdEncoding.EncodeToString(m.PrecompiledCharsmap)})
	}
	normalizers = append(normalizers, map[string]any{"type": "Replace", "pattern": map[string]any{"Regex": " {2,}"}, "content": " "})
	doc := map[string]any{
		"version": "1.0", "truncation": nil, "padding": nil,
		"added_tokens":  added,
		"normalizer":    map[string]any{"type": "Sequence", "normalizers": normalizers},
		"pre_tokenizer": map[string]any{"type": "Metaspace", "replacement": "▁", "add_prefix_space": m.AddDummyPrefix, "prepend_scheme": "always"},
		"post_processor": map[string]any{"type": "TemplateProcessing",
			"single": []any{map[string]any{"SpecialToken": map[string]any{"id": "<s>", "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}, map[string]any{"SpecialToken": map[string]any{"id": "</s>", "type_id": 0}}},
			"pair":   []any{map[string]any{"SpecialToken": map[string]any{"id": "<s>", "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "A", "type_id": 0}}, map[string]any{"SpecialToken": map[string]any{"id": "</s>", "type_id": 0}}, map[string]any{"SpecialToken": map[string]any{"id": "</s>", "type_id": 0}}, map[string]any{"Sequence": map[string]any{"id": "B", "type_id": 0}}, map[string]any{"SpecialToken": map[string]any{"id": "</s>", "type_id": 0}}},
			"special_tokens": map[string]any{
				"<s>":  map[string]any{"id": "<s>", "ids": []int{0}, "tokens": []string{"<s>"}},
				"</s>": map[string]any{"id": "</s>", "ids": []int{2}, "tokens": []string{"</s>"}},
			}},
		"decoder": map[string]any{"type": "Metaspace", "replacement": "▁", "add_prefix_space": true, "prepend_scheme": "always"},
		"model":   map[string]any{"type": "Unigram", "unk_id": 3, "vocab": vocab, "byte_fallback": false},
	}
	return json.MarshalIndent(doc, "", " ")
}

// TrainUnigramFiles trains a SentencePiece unigram model on text files with
// Debian's spm_train (the reference trainer; sugarme/tokenizer has none)
// and writes it as tokenizer.json to out.
func TrainUnigramFiles(ctx context.Context, files []string, out string, vocabSize int) error {
	if _, err := exec.LookPath("spm_train"); err != nil {
		return fmt.Errorf("train unigram tokenizer: spm_train not found (apt-get install sentencepiece): %w", err)
	}
	dir, err := os.MkdirTemp("", "xling-spm-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	prefix := filepath.Join(dir, "spm")
	cmd := exec.CommandContext(ctx, "spm_train", "--input="+strings.Join(files, ","), "--model_prefix="+prefix,
		fmt.Sprintf("--vocab_size=%d", vocabSize), "--model_type=unigram", "--character_coverage=0.9995",
		"--input_sentence_size=2000000", "--shuffle_input_sentence=true", "--minloglevel=1")
	if msg, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("spm_train: %w: %s", err, msg)
	}
	b, err := SentencePieceToJSON(prefix + ".model")
	if err != nil {
		return err
	}
	if err := os.WriteFile(out+".tmp", b, 0o644); err != nil {
		return err
	}
	return os.Rename(out+".tmp", out)
}
