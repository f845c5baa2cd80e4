// Package sidecar serves xling encoders to Weaviate as its
// text2vec-transformers inference container: the same HTTP API as
// Weaviate's transformers-inference image, with dynamic batching of the
// one-text requests Weaviate sends, a bounded queue and Prometheus metrics.
package sidecar

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"unicode/utf8"

	"github.com/xling-ir/xling/vectorizer"
)

// vectorsRequest is what Weaviate 1.35 posts to /vectors.
type vectorsRequest struct {
	Text   string
	Kind   vectorizer.Kind
	Dims   int // config.dimensions: 0 means the model's
	Config requestConfig
}

type requestConfig struct {
	PoolingStrategy string `json:"pooling_strategy"`
	TaskType        string `json:"task_type"`
	Dimensions      *int   `json:"dimensions"`
}

// vectorsResponse is what Weaviate reads back (note dims).
type vectorsResponse struct {
	Text   string    `json:"text"`
	Vector []float32 `json:"vector"`
	Dims   int       `json:"dims"`
}

// batchRequest is the bulk endpoint's body: many texts, one config.
type batchRequest struct {
	Texts  []string
	Kind   vectorizer.Kind
	Dims   int
	Config requestConfig
}

type batchResponse struct {
	Vectors [][]float32 `json:"vectors"`
	Dims    int         `json:"dims"`
}

// requestError is a client's mistake: answered 4xx with its message.
type requestError struct {
	status int
	msg    string
}

func (e *requestError) Error() string { return e.msg }

func badRequest(format string, args ...any) error {
	return &requestError{status: 400, msg: fmt.Sprintf(format, args...)}
}

// checkBody rejects bodies that encoding/json would silently repair:
// invalid UTF-8 inside a string becomes U+FFFD there.
func checkBody(body []byte) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return badRequest("empty request body: want a JSON object")
	}
	if !utf8.Valid(body) {
		return badRequest("request body is not valid UTF-8")
	}
	return nil
}

func (c requestConfig) resolve(modelDims int) (vectorizer.Kind, int, error) {
	kind, err := vectorizer.ParseKind(c.TaskType)
	if err != nil {
		return 0, 0, badRequest("config.task_type: %v", err)
	}
	switch c.PoolingStrategy {
	case "", "masked_mean", "cls":
		// The model's own pooling applies: xling.json fixes it at training
		// time, and Weaviate always sends masked_mean.
	default:
		return 0, 0, badRequest("config.pooling_strategy %q is not supported (want masked_mean or cls)", c.PoolingStrategy)
	}
	dims := 0
	if c.Dimensions != nil {
		dims = *c.Dimensions
		if dims <= 0 || dims > modelDims {
			return 0, 0, badRequest("config.dimensions %d is outside 1..%d", dims, modelDims)
		}
		if dims == modelDims {
			dims = 0
		}
	}
	return kind, dims, nil
}

// decodeVectorsRequest parses and validates a /vectors body.
func decodeVectorsRequest(body []byte, modelDims int) (vectorsRequest, error) {
	if err := checkBody(body); err != nil {
		return vectorsRequest{}, err
	}
	var raw struct {
		Text   json.RawMessage `json:"text"`
		Config requestConfig   `json:"config"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return vectorsRequest{}, jsonError(err)
	}
	if len(raw.Text) == 0 || string(raw.Text) == "null" {
		return vectorsRequest{}, badRequest(`missing "text"`)
	}
	var req vectorsRequest
	if err := json.Unmarshal(raw.Text, &req.Text); err != nil {
		return vectorsRequest{}, badRequest(`"text" must be a string`)
	}
	if err := checkSurrogates(raw.Text); err != nil {
		return vectorsRequest{}, badRequest(`"text": %v`, err)
	}
	req.Config = raw.Config
	var err error
	if req.Kind, req.Dims, err = raw.Config.resolve(modelDims); err != nil {
		return vectorsRequest{}, err
	}
	return req, nil
}

// decodeBatchRequest parses and validates a /vectors/batch body.
func decodeBatchRequest(body []byte, modelDims, maxTexts int) (batchRequest, error) {
	if err := checkBody(body); err != nil {
		return batchRequest{}, err
	}
	var raw struct {
		Texts  json.RawMessage `json:"texts"`
		Config requestConfig   `json:"config"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return batchRequest{}, jsonError(err)
	}
	var req batchRequest
	if len(raw.Texts) == 0 || string(raw.Texts) == "null" {
		return batchRequest{}, badRequest(`missing "texts"`)
	}
	if err := json.Unmarshal(raw.Texts, &req.Texts); err != nil {
		return batchRequest{}, badRequest(`"texts" must be an array of strings`)
	}
	if len(req.Texts) == 0 {
		return batchRequest{}, badRequest(`"texts" is empty`)
	}
	if err := checkSurrogates(raw.Texts); err != nil {
		return batchRequest{}, badRequest(`"texts": %v`, err)
	}
	if len(req.Texts) > maxTexts {
		return batchRequest{}, &requestError{status: 413, msg: fmt.Sprintf("%d texts in one request; the limit is %d", len(req.Texts), maxTexts)}
	}
	var err error
	if req.Kind, req.Dims, err = raw.Config.resolve(modelDims); err != nil {
		return batchRequest{}, err
	}
	return req, nil
}

// jsonError describes a JSON decoding error in the client's terms: the
// position or the field, never the server's Go types.
func jsonError(err error) error {
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syntax):
		return badRequest("invalid JSON at byte %d: %s", syntax.Offset, strings.TrimPrefix(syntax.Error(), "json: "))
	case errors.As(err, &typ):
		want := "a " + typ.Type.Kind().String()
		switch typ.Type.Kind() {
		case reflect.Struct, reflect.Map:
			want = "an object"
		case reflect.Slice, reflect.Array:
			want = "an array"
		case reflect.Pointer, reflect.Int, reflect.Int64:
			want = "an integer"
		}
		if typ.Field == "" {
			return badRequest("the body must be a JSON object, not %s", typ.Value)
		}
		return badRequest("field %q must be %s, not %s", typ.Field, want, typ.Value)
	}
	return badRequest("invalid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// checkSurrogates refuses \u escapes of unpaired UTF-16 surrogates, which
// encoding/json turns silently into U+FFFD: the same silent loss as the
// invalid UTF-8 that checkBody refuses. raw is a JSON value.
func checkSurrogates(raw []byte) error {
	hex4 := func(i int) (rune, bool) {
		if i+6 > len(raw) || raw[i] != '\\' || raw[i+1] != 'u' {
			return 0, false
		}
		var r rune
		for _, c := range raw[i+2 : i+6] {
			switch {
			case '0' <= c && c <= '9':
				r = r<<4 | rune(c-'0')
			case 'a' <= c && c <= 'f':
				r = r<<4 | rune(c-'a'+10)
			case 'A' <= c && c <= 'F':
				r = r<<4 | rune(c-'A'+10)
			default:
				return 0, false
			}
		}
		return r, true
	}
	for i := 0; i < len(raw); i++ {
		if raw[i] != '\\' {
			continue
		}
		r, ok := hex4(i)
		if !ok {
			i++ // another escape: skip its second byte (it may be a backslash)
			continue
		}
		switch {
		case 0xD800 <= r && r < 0xDC00:
			if lo, ok := hex4(i + 6); ok && 0xDC00 <= lo && lo < 0xE000 {
				i += 11
				continue
			}
			return fmt.Errorf("unpaired UTF-16 surrogate \\u%04X at byte %d: not a character", r, i)
		case 0xDC00 <= r && r < 0xE000:
			return fmt.Errorf("unpaired UTF-16 surrogate \\u%04X at byte %d: not a character", r, i)
		}
		i += 5
	}
	return nil
}

// truncate keeps the first dims components and renormalises, as Weaviate's
// dimensions setting expects of Matryoshka-style models.
func truncate(v []float32, dims int) []float32 {
	if dims == 0 || dims >= len(v) {
		return v
	}
	out := append([]float32(nil), v[:dims]...)
	var sum float64
	for _, x := range out {
		sum += float64(x) * float64(x)
	}
	if sum > 0 {
		inv := float32(1 / math.Sqrt(sum))
		for i := range out {
			out[i] *= inv
		}
	}
	return out
}

var (
	errOverloaded   = errors.New("the inference queue is full; retry shortly")
	errShuttingDown = errors.New("the server is shutting down")
)
