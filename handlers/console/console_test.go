package console_test

import (
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/mcpes/mcpes/handlers/console"
)

func get(t *testing.T, ts *httptest.Server, method, path string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res, string(b)
}

func TestHandler_ServesThePageAndItsModulesWithAStrictPolicy(t *testing.T) {
	// given the console mounted at its prefix
	mux := http.NewServeMux()
	mux.Handle(console.Prefix, console.Handler())
	ts := httptest.NewServer(mux)
	defer ts.Close()

	// when the page is fetched
	res, body := get(t, ts, "GET", "/ui/")
	// then it is HTML with the sign-in hook, under a same-origin-only policy, no cookie
	if res.StatusCode != 200 || !strings.HasPrefix(res.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /ui/: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	if !strings.Contains(body, `data-testid="token-input"`) {
		t.Errorf("page lacks the token input")
	}
	csp := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("policy %q lacks %q", csp, want)
		}
	}
	if res.Header.Get("Set-Cookie") != "" || res.Header.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers %v", res.Header)
	}
	// and every module and stylesheet it references is served with its type
	refs := regexp.MustCompile(`(?:src|href)="([a-z]+\.(?:js|css))"`).FindAllStringSubmatch(body, -1)
	imports := map[string]bool{}
	for _, m := range refs {
		imports[m[1]] = true
	}
	js := regexp.MustCompile(`from '\./([a-z]+\.js)'`)
	for name := range imports {
		res, src := get(t, ts, "GET", "/ui/"+name)
		if res.StatusCode != 200 {
			t.Errorf("%s: %d", name, res.StatusCode)
		}
		if strings.HasSuffix(name, ".js") && !strings.HasPrefix(res.Header.Get("Content-Type"), "text/javascript") {
			t.Errorf("%s served as %q", name, res.Header.Get("Content-Type"))
		}
		for _, m := range js.FindAllStringSubmatch(src, -1) {
			if !imports[m[1]] {
				imports[m[1]] = true
				if res, _ := get(t, ts, "GET", "/ui/"+m[1]); res.StatusCode != 200 {
					t.Errorf("import %s: %d", m[1], res.StatusCode)
				}
			}
		}
	}
	if !imports["app.js"] || !imports["api.js"] || !imports["timeline.js"] {
		t.Errorf("modules found: %v", imports)
	}
	// and nothing but reads is allowed
	if res, _ := get(t, ts, "POST", "/ui/"); res.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /ui/: %d", res.StatusCode)
	}
}

// The console must hold no ambient authority: the token lives in sessionStorage and
// goes out only as an Authorization header on fetches that never send cookies, and
// text from the service is never parsed as HTML.
func TestAssets_NoCookiesNoHTMLInjection(t *testing.T) {
	fsys := os.DirFS("assets")
	forbidden := []string{"document.cookie", "localStorage", "innerHTML", "outerHTML", "insertAdjacentHTML", "eval(", "new Function", "EventSource"}
	err := fs.WalkDir(fsys, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(path, ".js") {
			return err
		}
		b, err := fs.ReadFile(fsys, path)
		if err != nil {
			return err
		}
		src := string(b)
		for _, f := range forbidden {
			if strings.Contains(src, f) {
				t.Errorf("%s uses %s", path, f)
			}
		}
		if n, omit := strings.Count(src, "fetch("), strings.Count(src, "credentials: 'omit'"); n != omit {
			t.Errorf("%s: %d fetch calls, %d with credentials: 'omit'", path, n, omit)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
