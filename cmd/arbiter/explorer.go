package main

import (
	"embed"
	"io/fs"
	"net/http"
)

// The decision explorer (docs/explorer.md): a page on the HTTP listener,
// at /explorer/, that shows one recipient's decision with its
// explanations, suppressions and why-not answers, consent ledger,
// touches, journeys, and a past decision's receipt. The page is static
// (HTML, CSS and a JavaScript module, embedded) and holds no data: every
// datum it shows comes from the REST API, called from the browser with
// the bearer token the user gives the page. So it is served to anyone who
// reaches the listener, like /openapi.json, and what it can show is
// exactly what the token's roles and territories may read.
//
//go:embed explorer
var explorerFiles embed.FS

// explorerCSP is the page's Content-Security-Policy: scripts, styles and
// requests from this origin only (no inline script or style, no eval),
// no plugins, no framing, and no form that submits anywhere (a lookup is
// a fetch, never a navigation carrying the id).
const explorerCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// explorerHandler serves the explorer's files under /explorer/, with the
// policy and headers that keep the page to itself.
func explorerHandler() http.Handler {
	sub, err := fs.Sub(explorerFiles, "explorer")
	if err != nil {
		panic(err) // the directory is embedded: it is there
	}
	files := http.StripPrefix("/explorer/", http.FileServerFS(sub))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Security-Policy", explorerCSP)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cross-Origin-Opener-Policy", "same-origin")
		h.Set("Cross-Origin-Resource-Policy", "same-origin")
		h.Set("Cache-Control", "no-cache") // a new release's page, not a cached one
		files.ServeHTTP(w, r)
	})
}
