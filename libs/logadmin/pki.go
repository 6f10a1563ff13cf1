package logadmin

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// LocalPKI is a small certificate authority for a local or test cluster's
// TLS listener, where tools that cannot use SCRAM against Kafka 4 (kcat
// on librdkafka before 2.6.1 fails the nonce check) authenticate with a
// client certificate instead. The broker maps a certificate's CN to the
// user of the same name, so the ACLs of a role hold on both listeners.
// A production cluster gets its certificates from its own CA (Strimzi's,
// in infra/k8s).
//
// Its files, under Dir:
//
//	ca.pem              the CA certificate (clients and brokers trust it)
//	ca.key.pem          the CA key (mode 0600)
//	broker.pem          the brokers' key and certificate chain (mode 0600)
//	clients/USER.pem    a client's certificate, CN=USER
//	clients/USER.key.pem its key (mode 0600)
type LocalPKI struct{ Dir string }

// CA is the path of the CA certificate.
func (p LocalPKI) CA() string { return filepath.Join(p.Dir, "ca.pem") }

// Broker is the path of the brokers' key and certificate chain, in the
// form Kafka's PEM keystore reads.
func (p LocalPKI) Broker() string { return filepath.Join(p.Dir, "broker.pem") }

// Client returns the paths of user's certificate and key.
func (p LocalPKI) Client(user string) (cert, key string) {
	return filepath.Join(p.Dir, "clients", user+".pem"), filepath.Join(p.Dir, "clients", user+".key.pem")
}

// Ensure creates whatever is missing: the CA, a broker certificate valid
// for hosts (IP addresses or names), and a client certificate for each
// user. Existing files are kept, so it is safe at every start; the CA is
// made only once.
func (p LocalPKI) Ensure(hosts, users []string) error {
	if err := os.MkdirAll(filepath.Join(p.Dir, "clients"), 0o700); err != nil {
		return fmt.Errorf("logadmin: pki: %w", err)
	}
	caCert, caKey, err := p.ensureCA()
	if err != nil {
		return err
	}
	if !exists(p.Broker()) {
		tmpl := leaf("assent-kafka-broker", x509.ExtKeyUsageServerAuth)
		for _, h := range hosts {
			if ip := net.ParseIP(h); ip != nil {
				tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
			} else {
				tmpl.DNSNames = append(tmpl.DNSNames, h)
			}
		}
		// The brokers also connect to each other on their listeners.
		tmpl.ExtKeyUsage = append(tmpl.ExtKeyUsage, x509.ExtKeyUsageClientAuth)
		key, der, err := issue(tmpl, caCert, caKey)
		if err != nil {
			return err
		}
		if err := writePEM(p.Broker(), 0o600, block("PRIVATE KEY", key), block("CERTIFICATE", der), block("CERTIFICATE", caCert.Raw)); err != nil {
			return err
		}
	}
	for _, u := range users {
		certPath, keyPath := p.Client(u)
		if exists(certPath) && exists(keyPath) {
			continue
		}
		key, der, err := issue(leaf(u, x509.ExtKeyUsageClientAuth), caCert, caKey)
		if err != nil {
			return err
		}
		if err := writePEM(keyPath, 0o600, block("PRIVATE KEY", key)); err != nil {
			return err
		}
		if err := writePEM(certPath, 0o644, block("CERTIFICATE", der)); err != nil {
			return err
		}
	}
	return nil
}

func (p LocalPKI) ensureCA() (*x509.Certificate, *ecdsa.PrivateKey, error) {
	keyPath := filepath.Join(p.Dir, "ca.key.pem")
	if exists(p.CA()) && exists(keyPath) {
		certPEM, err := os.ReadFile(p.CA())
		if err != nil {
			return nil, nil, fmt.Errorf("logadmin: pki: %w", err)
		}
		keyPEM, err := os.ReadFile(keyPath) //nolint:gosec // G304: the CA key this PKI wrote in its own directory
		if err != nil {
			return nil, nil, fmt.Errorf("logadmin: pki: %w", err)
		}
		cb, _ := pem.Decode(certPEM)
		kb, _ := pem.Decode(keyPEM)
		if cb == nil || kb == nil {
			return nil, nil, fmt.Errorf("logadmin: pki: %s or %s is not PEM; delete both to make a new CA", p.CA(), keyPath)
		}
		cert, err := x509.ParseCertificate(cb.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("logadmin: pki: %s: %w", p.CA(), err)
		}
		k, err := x509.ParsePKCS8PrivateKey(kb.Bytes)
		if err != nil {
			return nil, nil, fmt.Errorf("logadmin: pki: %s: %w", keyPath, err)
		}
		key, ok := k.(*ecdsa.PrivateKey)
		if !ok {
			return nil, nil, fmt.Errorf("logadmin: pki: %s is not an ECDSA key", keyPath)
		}
		return cert, key, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("logadmin: pki: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial(),
		Subject:               pkix.Name{CommonName: "assent local Kafka CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
		BasicConstraintsValid: true,
		IsCA:                  true,
		MaxPathLenZero:        true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("logadmin: pki: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("logadmin: pki: %w", err)
	}
	if err := writePEM(keyPath, 0o600, block("PRIVATE KEY", keyDER)); err != nil {
		return nil, nil, err
	}
	if err := writePEM(p.CA(), 0o644, block("CERTIFICATE", der)); err != nil {
		return nil, nil, err
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, nil, fmt.Errorf("logadmin: pki: %w", err)
	}
	return cert, key, nil
}

func leaf(cn string, usage x509.ExtKeyUsage) *x509.Certificate {
	return &x509.Certificate{
		SerialNumber: serial(),
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().AddDate(2, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
}

// issue makes a key and a certificate for tmpl signed by the CA: the
// PKCS#8 key and the certificate, both DER.
func issue(tmpl, ca *x509.Certificate, caKey *ecdsa.PrivateKey) (key, cert []byte, err error) {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("logadmin: pki: %w", err)
	}
	cert, err = x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
	if err != nil {
		return nil, nil, fmt.Errorf("logadmin: pki: %w", err)
	}
	key, err = x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, nil, fmt.Errorf("logadmin: pki: %w", err)
	}
	return key, cert, nil
}

func serial() *big.Int {
	n, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 126))
	return n
}

func block(typ string, der []byte) *pem.Block { return &pem.Block{Type: typ, Bytes: der} }

func writePEM(path string, mode os.FileMode, blocks ...*pem.Block) error {
	var out []byte
	for _, b := range blocks {
		out = append(out, pem.EncodeToMemory(b)...)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, out, mode); err != nil {
		return fmt.Errorf("logadmin: pki: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("logadmin: pki: %w", err)
	}
	return nil
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return !errors.Is(err, fs.ErrNotExist)
}
