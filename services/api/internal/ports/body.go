package ports

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"
)

// decodeBody reads a JSON request body into v, strictly: at most max
// bytes, Content-Type application/json, one JSON object, no unknown or
// repeated fields, nothing after it. An empty body is allowed only when
// optional, and leaves v alone.
func decodeBody(c echo.Context, limit int64, v any, optional bool) error {
	req := c.Request()
	if req.ContentLength > limit {
		return tooLarge(limit)
	}
	raw, err := io.ReadAll(io.LimitReader(req.Body, limit+1))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return tooLarge(limit)
		}
		return malformed("the body could not be read: %v", err)
	}
	if int64(len(raw)) > limit {
		return tooLarge(limit)
	}
	if len(bytes.TrimSpace(raw)) == 0 {
		if optional {
			return nil
		}
		return malformed("a JSON body is required")
	}
	if err := checkContentType(req.Header.Get(echo.HeaderContentType)); err != nil {
		return err
	}
	if err := checkObject(raw); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return malformed("%s", jsonError(err))
	}
	return nil
}

func tooLarge(limit int64) *Problem {
	return httpProblem(http.StatusRequestEntityTooLarge, "invalid", fmt.Sprintf("the body is larger than %d bytes", limit))
}

func checkContentType(ct string) error {
	if ct == "" {
		return httpProblem(http.StatusUnsupportedMediaType, "invalid", "the body must be sent with Content-Type: application/json")
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "application/json" {
		return httpProblem(http.StatusUnsupportedMediaType, "invalid", fmt.Sprintf("Content-Type %q is not application/json", ct))
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return httpProblem(http.StatusUnsupportedMediaType, "invalid", fmt.Sprintf("charset %q: JSON is UTF-8", cs))
	}
	return nil
}

// checkObject checks that raw is exactly one JSON object without repeated
// keys at any depth. encoding/json would silently keep the last of two
// equal keys, and two readers of the same bytes could then disagree about
// what was asked.
func checkObject(raw []byte) error {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	tok, err := dec.Token()
	if err != nil {
		return malformed("the body is not JSON: %s", jsonError(err))
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return malformed("the body must be a JSON object")
	}
	if err := walkObject(dec, ""); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return malformed("the body has content after the JSON object")
	}
	return nil
}

// walkObject reads the rest of an object whose '{' was read.
func walkObject(dec *json.Decoder, path string) error {
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return malformed("the body is not JSON: %s", jsonError(err))
		}
		key, _ := tok.(string)
		field := key
		if path != "" {
			field = path + "." + key
		}
		if seen[key] {
			return malformed("%s appears twice", field)
		}
		seen[key] = true
		if err := walkValue(dec, field); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil { // '}'
		return malformed("the body is not JSON: %s", jsonError(err))
	}
	return nil
}

func walkValue(dec *json.Decoder, path string) error {
	tok, err := dec.Token()
	if err != nil {
		return malformed("the body is not JSON: %s", jsonError(err))
	}
	d, ok := tok.(json.Delim)
	if !ok {
		return nil
	}
	switch d {
	case '{':
		return walkObject(dec, path)
	case '[':
		for dec.More() {
			if err := walkValue(dec, path+"[]"); err != nil {
				return err
			}
		}
		if _, err := dec.Token(); err != nil {
			return malformed("the body is not JSON: %s", jsonError(err))
		}
	}
	return nil
}

// jsonError says what is wrong without Go type names.
func jsonError(err error) string {
	var (
		te *json.UnmarshalTypeError
		se *json.SyntaxError
	)
	switch {
	case errors.As(err, &te):
		if te.Field == "" {
			return fmt.Sprintf("expected %s, got JSON %s", jsonKind(te.Type.Kind().String()), te.Value)
		}
		return fmt.Sprintf("%s: expected %s, got JSON %s", te.Field, jsonKind(te.Type.Kind().String()), te.Value)
	case errors.As(err, &se):
		return fmt.Sprintf("%s (at byte %d)", strings.TrimPrefix(se.Error(), "json: "), se.Offset)
	case errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return "the JSON ends too early"
	}
	msg := strings.TrimPrefix(err.Error(), "json: ")
	return strings.TrimPrefix(msg, "approval: ")
}

func jsonKind(goKind string) string {
	switch goKind {
	case "string":
		return "a string"
	case "struct", "map":
		return "an object"
	case "slice", "array":
		return "an array"
	case "bool":
		return "true or false"
	default:
		return "a number"
	}
}
