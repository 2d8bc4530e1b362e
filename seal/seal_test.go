package seal

import (
	"strings"
	"testing"
	"time"
)

func keyring(t *testing.T, lines ...string) *Keyring {
	t.Helper()
	k, err := ParseKeys([]byte(strings.Join(lines, "")))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func line(t *testing.T, at time.Time) string {
	t.Helper()
	l, err := NewKeyLine(at)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestSealOpensOnlyWithItsKeyAndData(t *testing.T) {
	old := line(t, time.Unix(0, 0))
	k1 := keyring(t, old)
	sealed, err := k1.Seal([]byte("s3cret"), []byte("credentials/a"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(sealed, "s3cret") {
		t.Fatal("plaintext in the sealed value")
	}
	if id, ok := KeyOf(sealed); !ok || id != k1.Current() {
		t.Fatalf("KeyOf = %q, %v; want %s", id, ok, k1.Current())
	}
	if pt, err := k1.Open(sealed, []byte("credentials/a")); err != nil || string(pt) != "s3cret" {
		t.Fatalf("Open = %q, %v", pt, err)
	}
	if _, err := k1.Open(sealed, []byte("credentials/b")); err == nil {
		t.Fatal("a value sealed for one site opened for another")
	}
	tampered := sealed[:len(sealed)-2] + "AA"
	if _, err := k1.Open(tampered, []byte("credentials/a")); err == nil {
		t.Fatal("a tampered value opened")
	}
	if _, err := k1.Open("plain", nil); err != ErrNotSealed {
		t.Fatalf("Open(plain) = %v, want ErrNotSealed", err)
	}
	// Rotation: a new key appended seals; the old one still opens what it sealed.
	k2 := keyring(t, old, line(t, time.Unix(60, 0)))
	if k2.Current() == k1.Current() {
		t.Fatal("the appended key is not the current one")
	}
	if pt, err := k2.Open(sealed, []byte("credentials/a")); err != nil || string(pt) != "s3cret" {
		t.Fatalf("the old key no longer opens: %q, %v", pt, err)
	}
	resealed, _ := k2.Seal([]byte("s3cret"), nil)
	if _, err := k1.Open(resealed, nil); err == nil || !strings.Contains(err.Error(), "not in the key file") {
		t.Fatalf("a value of an unknown key: %v", err)
	}
}

func TestParseKeysNeverEchoesAKey(t *testing.T) {
	const secret = "c2VjcmV0LXNlY3JldC1zZWNyZXQ="
	for _, bad := range []string{"", "# only a comment\n", "k1 " + secret + "\n", "k1:" + secret + "\n", "bad id:" + secret + "\n"} {
		_, err := ParseKeys([]byte(bad))
		if err == nil {
			t.Errorf("%q parsed", bad)
			continue
		}
		if strings.Contains(err.Error(), secret) {
			t.Errorf("the error echoes the key: %v", err)
		}
	}
	l := line(t, time.Unix(0, 0))
	if _, err := ParseKeys([]byte(l + l)); err == nil {
		t.Error("a key twice parsed")
	}
}

func TestEnsureKeyFile(t *testing.T) {
	path := t.TempDir() + "/keys"
	created, err := EnsureKeyFile(path)
	if err != nil || !created {
		t.Fatalf("EnsureKeyFile = %v, %v", created, err)
	}
	k, err := LoadKeys(path)
	if err != nil {
		t.Fatal(err)
	}
	if created, err := EnsureKeyFile(path); err != nil || created {
		t.Fatalf("a second EnsureKeyFile = %v, %v; want the file kept", created, err)
	}
	k2, err := LoadKeys(path)
	if err != nil || k2.Current() != k.Current() {
		t.Fatalf("the key changed: %v", err)
	}
	if _, err := LoadKeys("/dev/zero"); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Fatalf("LoadKeys(/dev/zero) = %v", err)
	}
}
