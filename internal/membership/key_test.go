package membership

import (
	"bytes"
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

func TestGenerateEncodeParse(t *testing.T) {
	k, err := GenerateKey()
	if err != nil {
		t.Fatal(err)
	}
	if len(k) != KeySize {
		t.Fatalf("GenerateKey: %d bytes", len(k))
	}
	k2, _ := GenerateKey()
	if bytes.Equal(k, k2) {
		t.Fatal("two GenerateKey calls returned the same key")
	}
	text := EncodeKey(k)
	if len(text) != 44 || strings.ContainsAny(text, "\n ") {
		t.Fatalf("EncodeKey = %q", text)
	}
	back, err := ParseKey(text + "\n")
	if err != nil || !bytes.Equal(back, k) {
		t.Fatalf("ParseKey(EncodeKey(k)+newline) = %x, %v", back, err)
	}
}

func TestParseKey(t *testing.T) {
	k := bytes.Repeat([]byte{0xfb}, KeySize) // base64 of 0xfb bytes has '+' and '/'
	good := base64.StdEncoding.EncodeToString(k)
	for _, tc := range []struct {
		name, text string
		want       string // "" means success; else a substring of the error
	}{
		{"plain", good, ""},
		{"newline", good + "\n", ""},
		{"crlf", good + "\r\n", ""},
		{"surrounding spaces", "  " + good + " \n", ""},
		{"empty", "", "empty"},
		{"only newline", "\n", "empty"},
		{"16 bytes", base64.StdEncoding.EncodeToString(k[:16]), "16 bytes, want exactly 32"},
		{"33 bytes", base64.StdEncoding.EncodeToString(append(k, 1)), "33 bytes"},
		{"url-safe alphabet", base64.URLEncoding.EncodeToString(k), "URL-safe"},
		{"unpadded", base64.RawStdEncoding.EncodeToString(k), "not standard base64"},
		{"not base64", "this is not a key at all, not even close!!!!", "not standard base64"},
		{"space inside", good[:20] + " " + good[20:], "white space"},
		{"hex", strings.Repeat("ab", 32), "bytes, want exactly 32"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseKey(tc.text)
			if tc.want == "" {
				if err != nil || !bytes.Equal(got, k) {
					t.Fatalf("ParseKey = %x, %v; want the key", got, err)
				}
				return
			}
			if err == nil {
				t.Fatalf("ParseKey accepted %q", tc.text)
			}
			if !errors.Is(err, ErrInvalidKey) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q: want ErrInvalidKey mentioning %q", err, tc.want)
			}
			if strings.Contains(err.Error(), tc.text) && len(tc.text) > 8 {
				t.Errorf("error %q repeats the key text", err)
			}
		})
	}
}

func TestLoadKeyFile(t *testing.T) {
	dir := t.TempDir()
	k, _ := GenerateKey()
	write := func(name, text string, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(text), mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil { // not subject to umask
			t.Fatal(err)
		}
		return p
	}

	for _, mode := range []os.FileMode{0o600, 0o400, 0o640} {
		got, err := LoadKeyFile(write("ok", EncodeKey(k)+"\n", mode))
		if err != nil || !bytes.Equal(got, k) {
			t.Errorf("mode %#o: LoadKeyFile = %x, %v", mode, got, err)
		}
	}
	if runtime.GOOS != "windows" {
		for _, mode := range []os.FileMode{0o644, 0o604, 0o660, 0o666} {
			p := write("open", EncodeKey(k)+"\n", mode)
			_, err := LoadKeyFile(p)
			if !errors.Is(err, ErrKeyFileMode) || !strings.Contains(err.Error(), "chmod 600 "+p) {
				t.Errorf("mode %#o: LoadKeyFile = %v; want ErrKeyFileMode with the chmod to run", mode, err)
			}
		}
	}
	if _, err := LoadKeyFile(write("short", EncodeKey(k[:8]), 0o600)); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("short key file: %v", err)
	}
	if _, err := LoadKeyFile(write("big", strings.Repeat("A", 5000), 0o600)); !errors.Is(err, ErrInvalidKey) {
		t.Errorf("big file: %v", err)
	}
	if _, err := LoadKeyFile(filepath.Join(dir, "missing")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
	if _, err := LoadKeyFile(dir); err == nil || !strings.Contains(err.Error(), "not a regular file") {
		t.Errorf("directory: %v", err)
	}
}
