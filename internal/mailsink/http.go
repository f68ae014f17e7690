package mailsink

import (
	"encoding/json"
	"html/template"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

var listPage = template.Must(template.New("list").Parse(`<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>orderpipe mail sink</title>
<style>body{font-family:sans-serif;margin:24px}table{border-collapse:collapse}td,th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left;font-size:14px}</style>
</head><body>
<h1>orderpipe mail sink</h1>
<p>{{len .}} message(s), newest first{{if eq (len .) 500}} (the newest 500){{end}}. Save a raw message as .eml to open it in a mail client.</p>
<table><tr><th>received</th><th>to</th><th>subject</th><th>message</th></tr>
{{range .}}<tr><td>{{.Received.Format "2006-01-02 15:04:05"}}</td><td>{{range .To}}{{.}} {{end}}</td><td>{{.Subject}}</td><td><a href="{{.Link}}">{{.Name}}</a></td></tr>
{{end}}</table></body></html>
`))

type listed struct {
	Message
	Name string
	Link string
}

// Handler serves a listing of the received messages at / (newest first, at most 500), each
// message's raw .eml at /messages/{name} (text/plain, so a browser shows it), and every message
// as JSON at /api/messages (newest first, no limit; APIMessage), which checkers read. With a
// directory, the listings read the directory, so messages from earlier runs show too.
func (s *Sink) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		items := s.list()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_ = listPage.Execute(w, items)
	})
	mux.HandleFunc("GET /api/messages", func(w http.ResponseWriter, r *http.Request) {
		items := s.collect(-1)
		out := make([]APIMessage, len(items))
		for i, it := range items {
			out[i] = APIMessage{Name: it.Name, Received: it.Received, From: it.From, To: it.To,
				Subject: it.Subject, MessageID: it.MessageID}
			if it.Header != nil {
				out[i].Kind, out[i].OrderID = it.Header.Get("X-Orderpipe-Kind"), it.Header.Get("X-Orderpipe-Order")
			}
			if out[i].To == nil {
				out[i].To = []string{}
			}
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(out)
	})
	mux.HandleFunc("GET /messages/{name}", func(w http.ResponseWriter, r *http.Request) {
		name := r.PathValue("name")
		for _, it := range s.list() {
			if it.Name != name {
				continue
			}
			raw := it.Raw
			if raw == nil && it.File != "" {
				b, err := os.ReadFile(it.File)
				if err != nil {
					http.Error(w, err.Error(), http.StatusInternalServerError)
					return
				}
				raw = b
			}
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = w.Write(raw)
			return
		}
		http.NotFound(w, r)
	})
	return mux
}

// APIMessage is one message as GET /api/messages lists it. Kind and OrderID are the
// X-Orderpipe-Kind and X-Orderpipe-Order headers the notifier writes.
type APIMessage struct {
	Name      string    `json:"name"`
	Received  time.Time `json:"received"`
	From      string    `json:"from,omitempty"`
	To        []string  `json:"to"`
	Subject   string    `json:"subject"`
	MessageID string    `json:"message_id"`
	Kind      string    `json:"kind,omitempty"`
	OrderID   string    `json:"order_id,omitempty"`
}

func (s *Sink) list() []listed { return s.collect(500) }

// collect returns the newest limit messages (every message when limit < 0), newest first.
func (s *Sink) collect(limit int) []listed {
	var out []listed
	if s.cfg.Dir != "" {
		files, _ := filepath.Glob(filepath.Join(s.cfg.Dir, "*.eml"))
		slices.Sort(files)
		slices.Reverse(files)
		if limit >= 0 {
			files = files[:min(len(files), limit)]
		}
		for _, f := range files {
			m := Message{File: f}
			if st, err := os.Stat(f); err == nil {
				m.Received = st.ModTime()
			}
			if raw, err := os.ReadFile(f); err == nil {
				parsed := s.parse(raw)
				m.Subject, m.MessageID, m.Header = parsed.Subject, parsed.MessageID, parsed.Header
				if to := parsed.Header.Get("To"); to != "" {
					m.To = []string{to}
				}
			}
			name := filepath.Base(f)
			out = append(out, listed{Message: m, Name: name, Link: "/messages/" + name})
		}
		return out
	}
	msgs := s.Messages()
	for i := len(msgs) - 1; i >= 0 && (limit < 0 || len(out) < limit); i-- {
		name := strconv.Itoa(i+1) + ".eml"
		out = append(out, listed{Message: msgs[i], Name: name, Link: "/messages/" + name})
	}
	return out
}
