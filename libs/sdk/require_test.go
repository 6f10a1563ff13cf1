package assent_test

import (
	"errors"
	"fmt"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// require is the handful of test assertions the SDK's tests use, written
// with the standard library alone: the SDK module has no dependencies, not
// even for its tests, so that a user who adds it gets nothing else. The
// names and arguments follow testify's require package.
var require assertions

type assertions struct{}

func fail(t testing.TB, msgAndArgs []any, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if len(msgAndArgs) > 0 {
		if f, ok := msgAndArgs[0].(string); ok {
			msg += ": " + fmt.Sprintf(f, msgAndArgs[1:]...)
		} else {
			msg += ": " + fmt.Sprint(msgAndArgs...)
		}
	}
	t.Fatal(msg)
}

// Equal fails unless expected and actual are deeply equal.
func (assertions) Equal(t testing.TB, expected, actual any, msgAndArgs ...any) {
	t.Helper()
	if !reflect.DeepEqual(expected, actual) {
		fail(t, msgAndArgs, "not equal:\nexpected: %#v\nactual:   %#v", expected, actual)
	}
}

// NotEqual fails if expected and actual are deeply equal.
func (assertions) NotEqual(t testing.TB, expected, actual any, msgAndArgs ...any) {
	t.Helper()
	if reflect.DeepEqual(expected, actual) {
		fail(t, msgAndArgs, "should differ: %#v", actual)
	}
}

// True fails unless v is true.
func (assertions) True(t testing.TB, v bool, msgAndArgs ...any) {
	t.Helper()
	if !v {
		fail(t, msgAndArgs, "should be true")
	}
}

// False fails unless v is false.
func (assertions) False(t testing.TB, v bool, msgAndArgs ...any) {
	t.Helper()
	if v {
		fail(t, msgAndArgs, "should be false")
	}
}

// NoError fails if err is not nil.
func (assertions) NoError(t testing.TB, err error, msgAndArgs ...any) {
	t.Helper()
	if err != nil {
		fail(t, msgAndArgs, "unexpected error: %v", err)
	}
}

// Error fails if err is nil.
func (assertions) Error(t testing.TB, err error, msgAndArgs ...any) {
	t.Helper()
	if err == nil {
		fail(t, msgAndArgs, "an error was expected")
	}
}

// EqualError fails unless err's message is want.
func (assertions) EqualError(t testing.TB, err error, want string, msgAndArgs ...any) {
	t.Helper()
	if err == nil || err.Error() != want {
		fail(t, msgAndArgs, "error %v, want %q", err, want)
	}
}

// ErrorContains fails unless err's message contains sub.
func (assertions) ErrorContains(t testing.TB, err error, sub string, msgAndArgs ...any) {
	t.Helper()
	if err == nil || !strings.Contains(err.Error(), sub) {
		fail(t, msgAndArgs, "error %v does not contain %q", err, sub)
	}
}

// ErrorIs fails unless errors.Is(err, target).
func (assertions) ErrorIs(t testing.TB, err, target error, msgAndArgs ...any) {
	t.Helper()
	if !errors.Is(err, target) {
		fail(t, msgAndArgs, "error %v is not %v", err, target)
	}
}

// ErrorAs fails unless errors.As(err, target).
func (assertions) ErrorAs(t testing.TB, err error, target any, msgAndArgs ...any) {
	t.Helper()
	if !errors.As(err, target) {
		fail(t, msgAndArgs, "error %v is not a %T", err, target)
	}
}

// NotNil fails if v is nil.
func (assertions) NotNil(t testing.TB, v any, msgAndArgs ...any) {
	t.Helper()
	if isNil(v) {
		fail(t, msgAndArgs, "should not be nil")
	}
}

// Len fails unless v (a string, slice, map, array or channel) has n elements.
func (assertions) Len(t testing.TB, v any, n int, msgAndArgs ...any) {
	t.Helper()
	if got := reflect.ValueOf(v).Len(); got != n {
		fail(t, msgAndArgs, "length %d, want %d: %#v", got, n, v)
	}
}

// Empty fails unless v is empty (zero, or of length 0).
func (assertions) Empty(t testing.TB, v any, msgAndArgs ...any) {
	t.Helper()
	if !isEmpty(v) {
		fail(t, msgAndArgs, "should be empty: %#v", v)
	}
}

// NotEmpty fails if v is empty.
func (assertions) NotEmpty(t testing.TB, v any, msgAndArgs ...any) {
	t.Helper()
	if isEmpty(v) {
		fail(t, msgAndArgs, "should not be empty")
	}
}

// NotContains fails if s (a string, or a map with string keys) contains sub.
func (assertions) NotContains(t testing.TB, s any, sub string, msgAndArgs ...any) {
	t.Helper()
	has := false
	switch v := s.(type) {
	case string:
		has = strings.Contains(v, sub)
	case map[string]any:
		_, has = v[sub]
	default:
		fail(t, msgAndArgs, "NotContains: unsupported %T", s)
	}
	if has {
		fail(t, msgAndArgs, "%v should not contain %q", s, sub)
	}
}

// Regexp fails unless s matches re, a *regexp.Regexp or its source.
func (assertions) Regexp(t testing.TB, re, v any, msgAndArgs ...any) {
	s := fmt.Sprint(v)
	t.Helper()
	rx, ok := re.(*regexp.Regexp)
	if !ok {
		rx = regexp.MustCompile(fmt.Sprint(re))
	}
	if !rx.MatchString(s) {
		fail(t, msgAndArgs, "%q does not match %s", s, re)
	}
}

// Greater fails unless a > b.
func (assertions) Greater(t testing.TB, a, b any, msgAndArgs ...any) {
	t.Helper()
	if compare(t, a, b) <= 0 {
		fail(t, msgAndArgs, "%v is not greater than %v", a, b)
	}
}

// GreaterOrEqual fails unless a >= b.
func (assertions) GreaterOrEqual(t testing.TB, a, b any, msgAndArgs ...any) {
	t.Helper()
	if compare(t, a, b) < 0 {
		fail(t, msgAndArgs, "%v is less than %v", a, b)
	}
}

// Less fails unless a < b.
func (assertions) Less(t testing.TB, a, b any, msgAndArgs ...any) {
	t.Helper()
	if compare(t, a, b) >= 0 {
		fail(t, msgAndArgs, "%v is not less than %v", a, b)
	}
}

func isNil(v any) bool {
	if v == nil {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.Chan, reflect.Func, reflect.Interface, reflect.Map, reflect.Pointer, reflect.Slice:
		return rv.IsNil()
	default:
		return false
	}
}

func isEmpty(v any) bool {
	if isNil(v) {
		return true
	}
	rv := reflect.ValueOf(v)
	switch rv.Kind() {
	case reflect.String, reflect.Slice, reflect.Map, reflect.Array, reflect.Chan:
		return rv.Len() == 0
	default:
		return rv.IsZero()
	}
}

// compare orders two numbers (of any integer, float or duration kind) or
// two strings.
func compare(t testing.TB, a, b any) int {
	t.Helper()
	num := func(v any) (float64, bool) {
		rv := reflect.ValueOf(v)
		switch rv.Kind() {
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
			return float64(rv.Int()), true
		case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
			return float64(rv.Uint()), true
		case reflect.Float32, reflect.Float64:
			return rv.Float(), true
		default:
			return 0, false
		}
	}
	x, ok1 := num(a)
	y, ok2 := num(b)
	if !ok1 || !ok2 {
		as, ok1 := a.(string)
		bs, ok2 := b.(string)
		if !ok1 || !ok2 {
			t.Fatalf("cannot compare %T with %T", a, b)
		}
		return strings.Compare(as, bs)
	}
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}
