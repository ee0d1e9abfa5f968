package agent

import (
	"bytes"
	"strings"
	"testing"
)

func TestMaskerAcrossWrites(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	m := newMasker(&out, map[string]string{"TOKEN": "s3cr3t-token", "CERT": "line-one\nline-two", "TINY": "ab"})
	text := "start s3cr3t-token end\ncert: line-one / line-two\nab is too short to mask\nno newline s3cr3t-to"
	// Write one byte at a time: a secret is split across every boundary.
	for i := 0; i < len(text); i++ {
		m.Write([]byte{text[i]})
	}
	m.Write([]byte("ken"))
	m.Flush()
	got := out.String()
	want := "start *** end\ncert: *** / ***\nab is too short to mask\nno newline ***"
	if got != want {
		t.Errorf("masked\n got %q\nwant %q", got, want)
	}
	if strings.Contains(got, "s3cr3t") {
		t.Error("secret leaked")
	}
}

func TestMaskerWithoutSecretsPassesThrough(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	m := newMasker(&out, nil)
	m.Write([]byte("partial"))
	if out.String() != "partial" {
		t.Errorf("held %q without secrets", out.String())
	}
}
