package webhook

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"go.yaml.in/yaml/v3"
)

// MaxSecretsFile bounds the secrets file.
const MaxSecretsFile = 1 << 20

// Secrets maps each webhook URL to its signing secrets, read from a YAML
// file:
//
//	https://hooks.example.com/assent/deploys:
//	  - whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw   # the new key first during a rotation
//	  - whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD
//	https://other.example.com/hook: whsec_...
//
// The file is read again when it changes (checked at most every
// ReloadEvery), so a rotation needs no restart; a file that no longer
// parses keeps the last good secrets and is reported by Err.
type Secrets struct {
	path string
	now  func() time.Time

	mu      sync.Mutex
	checked time.Time
	mtime   time.Time
	size    int64
	byURL   map[string][]Secret
	err     error
}

// ReloadEvery is how often the file's modification time is looked at.
const ReloadEvery = 2 * time.Second

// LoadSecrets reads the file; an empty path means no webhook has a secret.
func LoadSecrets(path string) (*Secrets, error) {
	s := &Secrets{path: path, now: time.Now, byURL: map[string][]Secret{}}
	if path == "" {
		return s, nil
	}
	if err := s.reload(true); err != nil {
		return nil, err
	}
	return s, nil
}

// ParseSecrets reads the YAML form of the file.
func ParseSecrets(b []byte) (map[string][]Secret, error) {
	var raw map[string]yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&raw); err != nil {
		if errors.Is(err, io.EOF) {
			return map[string][]Secret{}, nil
		}
		// The parser's message may quote the input, and so a secret: not shown.
		return nil, errors.New("webhook secrets: the file is not a YAML mapping of URL to secrets")
	}
	out := make(map[string][]Secret, len(raw))
	for url, node := range raw {
		var list []string
		switch node.Kind {
		case yaml.ScalarNode:
			list = []string{node.Value}
		case yaml.SequenceNode:
			for _, n := range node.Content {
				if n.Kind != yaml.ScalarNode {
					return nil, fmt.Errorf("webhook secrets: %s: line %d: want whsec_ strings", url, n.Line)
				}
				list = append(list, n.Value)
			}
		case yaml.DocumentNode, yaml.MappingNode, yaml.AliasNode:
			return nil, fmt.Errorf("webhook secrets: %s: line %d: want a whsec_ secret or a list of them", url, node.Line)
		default:
			return nil, fmt.Errorf("webhook secrets: %s: line %d: want a whsec_ secret or a list of them", url, node.Line)
		}
		if len(list) == 0 || len(list) > 8 {
			return nil, fmt.Errorf("webhook secrets: %s: want 1 to 8 secrets, got %d", url, len(list))
		}
		for i, v := range list {
			sec, err := ParseSecret(v)
			if err != nil {
				// The value itself is never repeated: it is a secret.
				return nil, fmt.Errorf("webhook secrets: %s: secret %d: %w", url, i+1, err)
			}
			out[url] = append(out[url], sec)
		}
	}
	return out, nil
}

// For returns the secrets of a URL (none if it has none).
func (s *Secrets) For(url string) []Secret {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.path != "" && s.now().Sub(s.checked) >= ReloadEvery {
		_ = s.reloadLocked(false)
	}
	return s.byURL[url]
}

// Err is the problem with the file as it now is, if it could not be read
// again; the last good secrets stay in use.
func (s *Secrets) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

func (s *Secrets) reload(force bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.reloadLocked(force)
}

func (s *Secrets) reloadLocked(force bool) error {
	s.checked = s.now()
	fi, err := os.Stat(s.path)
	if err != nil {
		s.err = fmt.Errorf("webhook secrets: %w", err)
		return s.err
	}
	if !force && fi.ModTime().Equal(s.mtime) && fi.Size() == s.size {
		return nil
	}
	if fi.Size() > MaxSecretsFile {
		s.err = fmt.Errorf("webhook secrets: %s is %d bytes, more than %d", s.path, fi.Size(), MaxSecretsFile)
		return s.err
	}
	b, err := os.ReadFile(s.path)
	if err != nil {
		s.err = fmt.Errorf("webhook secrets: %w", err)
		return s.err
	}
	m, err := ParseSecrets(b)
	if err != nil {
		s.err = fmt.Errorf("%s: %w", s.path, err)
		return s.err
	}
	s.byURL, s.mtime, s.size, s.err = m, fi.ModTime(), fi.Size(), nil
	return nil
}
