// Package frontend holds the workshop's web pages and hands them to the
// server as a file system embedded in the binary, so a build needs no node
// and a running server needs no network beyond itself (no CDN).
//
// The root of FS holds one HTML page per role (index.html for the home page,
// room.html for attendees, team.html for team leads, facilitator.html,
// presenter.html and results.html) and a static/ folder with the style
// sheet, the page scripts (plain ES modules, no bundler) and the vendored
// Preact, htm and @preact/signals modules (see README.md and vendor.sh).
//
// The pages obey the server's Content-Security-Policy: no inline scripts,
// styles or event-handler attributes, and every user text is rendered as a
// text node. They speak the contract in hub/PROTOCOL.md.
package frontend

import (
	"embed"
	"io/fs"
)

//go:embed *.html static
var assets embed.FS

// FS returns the pages and their static files. Its root holds index.html,
// room.html, team.html, facilitator.html, presenter.html, results.html and
// the static/ folder. The files never change while the program runs.
func FS() fs.FS { return assets }
