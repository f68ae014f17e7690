package mailsink_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/smtp"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/orderpipe/orderpipe/internal/mailsink"
)

// A message sent with a plain SMTP client lands in memory and as an .eml file, and the listing
// page shows it.
func TestSinkStoresAndLists(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	s, err := mailsink.Start(mailsink.Config{Addr: "127.0.0.1:0", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	msg := "From: shop@example.com\r\nTo: ada@example.com\r\nSubject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <order_confirmed.42@shop.example>\r\n\r\nHello\r\n"
	if err := smtp.SendMail(s.Addr(), nil, "shop@example.com", []string{"ada@example.com"}, []byte(msg)); err != nil {
		t.Fatal(err)
	}
	got := s.Messages()
	if len(got) != 1 || got[0].Subject != "Grüße" || got[0].MessageID != "<order_confirmed.42@shop.example>" || got[0].To[0] != "ada@example.com" {
		t.Fatalf("got %+v", got)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*.eml"))
	if len(files) != 1 || !strings.HasSuffix(files[0], "order_confirmed.42@shop.example.eml") {
		t.Fatalf("files %v, want one .eml named after the Message-ID", files)
	}
	if b, _ := os.ReadFile(files[0]); !strings.Contains(string(b), "Hello") {
		t.Fatalf("file content %q", b)
	}
	srv := httptest.NewServer(s.Handler())
	t.Cleanup(srv.Close)
	resp, err := http.Get(srv.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	name := filepath.Base(files[0])
	if !strings.Contains(string(page), "Grüße") || !strings.Contains(string(page), "/messages/"+name) {
		t.Fatalf("listing lacks the message:\n%s", page)
	}
	resp, err = http.Get(srv.URL + "/messages/" + name)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(raw), "Message-ID: <order_confirmed.42@shop.example>") {
		t.Fatalf("raw message: %d %q", resp.StatusCode, raw)
	}
	// Rejections are real SMTP replies.
	s.Reject(451, "try again later")
	err = smtp.SendMail(s.Addr(), nil, "shop@example.com", []string{"ada@example.com"}, []byte(msg))
	if err == nil || !strings.Contains(err.Error(), "451") {
		t.Fatalf("while rejecting: got %v, want a 451 reply", err)
	}
	s.Reject(0, "")
	if err := smtp.SendMail(s.Addr(), nil, "shop@example.com", []string{"ada@example.com"}, []byte(msg)); err != nil || s.Count() != 2 {
		t.Fatalf("after rejecting: %v, %d messages", err, s.Count())
	}
}

// GET /api/messages lists every message as JSON, with the notifier's kind and order headers,
// in memory and from a directory alike.
func TestSinkAPIMessages(t *testing.T) {
	t.Parallel()
	for _, dir := range []string{"", t.TempDir()} {
		s, err := mailsink.Start(mailsink.Config{Addr: "127.0.0.1:0", Dir: dir})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = s.Close() })
		msg := "From: shop@example.com\r\nTo: ada@example.com\r\nSubject: Confirmed\r\nMessage-ID: <m1@shop.example>\r\nX-Orderpipe-Kind: order_confirmed\r\nX-Orderpipe-Order: 42\r\n\r\nHello\r\n"
		for range 2 { // the same e-mail twice: both are listed
			if err := smtp.SendMail(s.Addr(), nil, "shop@example.com", []string{"ada@example.com"}, []byte(msg)); err != nil {
				t.Fatal(err)
			}
		}
		srv := httptest.NewServer(s.Handler())
		t.Cleanup(srv.Close)
		resp, err := http.Get(srv.URL + "/api/messages")
		if err != nil {
			t.Fatal(err)
		}
		var got []mailsink.APIMessage
		err = json.NewDecoder(resp.Body).Decode(&got)
		resp.Body.Close()
		if err != nil || resp.Header.Get("Content-Type") != "application/json" {
			t.Fatalf("dir %q: decode: %v, content type %q", dir, err, resp.Header.Get("Content-Type"))
		}
		if len(got) != 2 {
			t.Fatalf("dir %q: %d messages, want 2", dir, len(got))
		}
		for _, m := range got {
			if m.Kind != "order_confirmed" || m.OrderID != "42" || m.MessageID != "<m1@shop.example>" || m.Subject != "Confirmed" || m.To[0] != "ada@example.com" {
				t.Errorf("dir %q: message %+v", dir, m)
			}
		}
		if got[0].Name == got[1].Name {
			t.Errorf("dir %q: both messages are named %s", dir, got[0].Name)
		}
	}
}
