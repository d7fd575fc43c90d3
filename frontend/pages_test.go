package frontend_test

import (
	"io/fs"
	"path"
	"regexp"
	"strings"
	"testing"

	"github.com/leveling/workshop/frontend"
)

var pages = []string{"index.html", "room.html", "team.html", "facilitator.html", "presenter.html", "results.html"}

// TestPagesExist checks the file names the server routes to.
func TestPagesExist(t *testing.T) {
	fsys := frontend.FS()
	for _, name := range append(pages, "static/css/app.css", "static/js/conn.js", "static/vendor/preact.module.js") {
		if _, err := fs.Stat(fsys, name); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

var (
	inlineScript = regexp.MustCompile(`(?is)<script\b[^>]*>\s*[^<\s]`)
	scriptTag    = regexp.MustCompile(`(?is)<script\b([^>]*)>`)
	styleAttr    = regexp.MustCompile(`(?i)<[^>]*\sstyle\s*=`)
	styleElem    = regexp.MustCompile(`(?i)<style\b`)
	handlerAttr  = regexp.MustCompile(`(?i)<[^>]*\son[a-z]+\s*=`)
	refAttr      = regexp.MustCompile(`(?i)\s(?:src|href)="([^"]+)"`)
)

// TestPagesObeyCSP checks what the Content-Security-Policy would block:
// inline scripts, inline styles, event-handler attributes, and files from
// anywhere but the server itself.
func TestPagesObeyCSP(t *testing.T) {
	fsys := frontend.FS()
	for _, name := range pages {
		b, err := fs.ReadFile(fsys, name)
		if err != nil {
			t.Fatal(err)
		}
		html := string(b)
		for _, m := range scriptTag.FindAllStringSubmatch(html, -1) {
			if !strings.Contains(m[1], "src=") {
				t.Errorf("%s: a script without src: %s", name, m[0])
			}
		}
		for _, c := range []struct {
			re   *regexp.Regexp
			what string
		}{{inlineScript, "an inline script"}, {styleAttr, "a style attribute"}, {styleElem, "a style element"}, {handlerAttr, "an event-handler attribute"}} {
			if m := c.re.FindString(html); m != "" {
				t.Errorf("%s: %s: %s", name, c.what, m)
			}
		}
		for _, m := range refAttr.FindAllStringSubmatch(html, -1) {
			ref := m[1]
			if !strings.HasPrefix(ref, "/static/") {
				t.Errorf("%s: %q is not served from /static/", name, ref)
				continue
			}
			if _, err := fs.Stat(fsys, strings.TrimPrefix(ref, "/")); err != nil {
				t.Errorf("%s: %s: %v", name, ref, err)
			}
		}
	}
}

var importSpec = regexp.MustCompile(`(?:\bfrom\s*|\bimport\s*\(?\s*)["']([^"']+)["']`)

// TestModulesResolve checks that every import of every script is a
// relative path to a file that is embedded: no bare specifiers (no import
// map, no bundler) and no CDN.
func TestModulesResolve(t *testing.T) {
	fsys := frontend.FS()
	n := 0
	err := fs.WalkDir(fsys, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".js") {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		for _, m := range importSpec.FindAllStringSubmatch(string(b), -1) {
			spec := m[1]
			n++
			if !strings.HasPrefix(spec, "./") && !strings.HasPrefix(spec, "../") {
				t.Errorf("%s: import %q is not a relative path", p, spec)
				continue
			}
			target := path.Join(path.Dir(p), spec)
			if _, err := fs.Stat(fsys, target); err != nil {
				t.Errorf("%s: import %q: %v", p, spec, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 10 {
		t.Errorf("found only %d imports; is the pattern still right?", n)
	}
}

var htmlSinks = regexp.MustCompile(`innerHTML|outerHTML|insertAdjacentHTML|document\.write|dangerouslySetInnerHTML|\beval\(|new Function\(`)

// TestNoHTMLSinks checks that the page scripts never turn text into markup:
// user text reaches the page only as text nodes.
func TestNoHTMLSinks(t *testing.T) {
	fsys := frontend.FS()
	entries, err := fs.ReadDir(fsys, "static/js")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		b, err := fs.ReadFile(fsys, "static/js/"+e.Name())
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			if htmlSinks.MatchString(line) {
				t.Errorf("static/js/%s:%d: %s", e.Name(), i+1, strings.TrimSpace(line))
			}
		}
	}
}
