package sessiontoken

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

const noticesFile = "THIRD_PARTY_NOTICES.md"

// releasePlatforms reads the platforms `make release` builds from scripts/release.sh.
func releasePlatforms() ([]string, error) {
	b, err := os.ReadFile("scripts/release.sh")
	if err != nil {
		return nil, err
	}
	m := regexp.MustCompile(`(?m)^PLATFORMS="([^"]+)"$`).FindSubmatch(b)
	if m == nil {
		return nil, fmt.Errorf(`scripts/release.sh has no PLATFORMS="..." line`)
	}
	return strings.Fields(string(m[1])), nil
}

// THIRD_PARTY_NOTICES.md lists every module a release binary contains, on each release platform,
// with the license files of its module download, and holds those texts. It is generated:
// NOTICES_UPDATE=1 go test -run TestThirdPartyNotices . rewrites it; otherwise the test fails when
// a dependency was added, dropped or upgraded without it.
func TestThirdPartyNotices(t *testing.T) {
	if testing.Short() {
		t.Skip("lists the dependencies with the go command")
	}
	want, err := thirdPartyNotices()
	if err != nil {
		t.Fatal(err)
	}
	if os.Getenv("NOTICES_UPDATE") != "" {
		if err := os.WriteFile(noticesFile, want, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(noticesFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s is out of date with the release binaries' modules: regenerate it with NOTICES_UPDATE=1 go test -run TestThirdPartyNotices . and review the diff", noticesFile)
	}
}

type module struct {
	path, version string
	platforms     []string
	files         []licenseFile
}

type licenseFile struct {
	name, kind string
	text       []byte
}

// licenseKinds names a license file by what its text says; a file none of them matches fails
// the test, for a person to read and add here (an allowlist: an unknown license is not shipped
// unread). A file may match more than one (OpenTelemetry's: Apache-2.0 with a BSD-3-Clause part).
var licenseKinds = []struct {
	kind string
	re   *regexp.Regexp
}{
	{"Apache-2.0", regexp.MustCompile(`Apache License,? Version 2\.0`)},
	{"MPL-2.0", regexp.MustCompile(`Mozilla Public License,? [Vv]ersion 2\.0`)},
	{"MIT", regexp.MustCompile(`Permission is hereby granted, free of charge, to any person obtaining a copy`)},
	{"BSD-3-Clause", regexp.MustCompile(`(?i)Redistribution and use in source and binary forms[\s\S]*Neither the name`)},
	{"ISC", regexp.MustCompile(`Permission to use, copy, modify, and(/or)? distribute this software for any`)},
	{"CC-BY-SA-4.0 (documentation)", regexp.MustCompile(`Attribution-ShareAlike 4\.0 International`)},
}

// bsd2 is BSD-style without the endorsement clause that makes BSD-3-Clause.
var bsd2 = regexp.MustCompile(`Redistribution and use in source and binary forms`)

func classify(text []byte) string {
	flat := []byte(strings.Join(strings.Fields(string(text)), " "))
	var kinds []string
	for _, k := range licenseKinds {
		if k.re.Match(flat) {
			kinds = append(kinds, k.kind)
		}
	}
	if len(kinds) == 0 && bsd2.Match(flat) {
		kinds = append(kinds, "BSD-2-Clause")
	}
	return strings.Join(kinds, " with ")
}

var licenseName = regexp.MustCompile(`(?i)^(licen[cs]e|copying|notice)`)

func thirdPartyNotices() ([]byte, error) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil, err
	}
	out, err := exec.Command(goBin, "env", "GOMODCACHE", "GOROOT").Output()
	if err != nil {
		return nil, err
	}
	env := strings.Fields(string(out))
	modCache, goRoot := env[0], env[1]
	platforms, err := releasePlatforms()
	if err != nil {
		return nil, err
	}
	mods := map[string]*module{}
	for _, p := range platforms {
		goos, goarch, _ := strings.Cut(p, "/")
		// The release build's settings (release_build in scripts/release-lib.sh) that choose files.
		cmd := exec.Command(goBin, "list", "-deps", "-f", "{{with .Module}}{{.Path}} {{.Version}}{{end}}", "./cmd/vault-plugin-secrets-sessiontoken")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+goos, "GOARCH="+goarch, "GOFLAGS=-mod=readonly")
		out, err := cmd.Output()
		if err != nil {
			return nil, fmt.Errorf("go list for %s: %v", p, err)
		}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			path, version, _ := strings.Cut(line, " ")
			if version == "" { // this module
				continue
			}
			key := path + "@" + version
			if mods[key] == nil {
				mods[key] = &module{path: path, version: version}
			}
			if ps := mods[key].platforms; len(ps) == 0 || ps[len(ps)-1] != p {
				mods[key].platforms = append(ps, p)
			}
		}
	}
	var list []*module
	for _, m := range mods {
		dir := filepath.Join(modCache, escapeModulePath(m.path)+"@"+escapeModulePath(m.version))
		files, err := licenseFiles(dir)
		if err != nil {
			return nil, fmt.Errorf("%s %s: %v", m.path, m.version, err)
		}
		m.files = files
		list = append(list, m)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].path < list[j].path })
	goLicense, err := os.ReadFile(filepath.Join(goRoot, "LICENSE"))
	if err != nil {
		return nil, err
	}
	std := &module{path: "Go standard library and runtime", version: "the release's Go", platforms: platforms,
		files: []licenseFile{{name: "LICENSE", kind: classify(goLicense), text: goLicense}}}
	return renderNotices(platforms, append([]*module{std}, list...))
}

// licenseFiles reads the license and notice files at the root of a module's download.
func licenseFiles(dir string) ([]licenseFile, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []licenseFile
	for _, e := range entries {
		if e.IsDir() || !licenseName.MatchString(e.Name()) {
			continue
		}
		text, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			return nil, err
		}
		f := licenseFile{name: e.Name(), text: text}
		if !strings.HasPrefix(strings.ToLower(e.Name()), "notice") {
			if f.kind = classify(text); f.kind == "" {
				return nil, fmt.Errorf("%s: a license this test does not know: read it and add it to licenseKinds", e.Name())
			}
		}
		files = append(files, f)
	}
	for _, f := range files {
		if f.kind != "" {
			return files, nil
		}
	}
	return nil, fmt.Errorf("no license file in the module download (%s)", dir)
}

// escapeModulePath is the module cache's spelling of a path: each capital letter as ! and the
// lower-case letter.
func escapeModulePath(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= 'A' && r <= 'Z' {
			b.WriteByte('!')
			r += 'a' - 'A'
		}
		b.WriteRune(r)
	}
	return b.String()
}

func renderNotices(platforms []string, mods []*module) ([]byte, error) {
	var b bytes.Buffer
	b.WriteString(`# Third-party notices

The release binaries of vault-plugin-secrets-sessiontoken (` + "`make release`" + `: ` + strings.Join(platforms, ", ") + `) contain
the Go standard library and runtime and the Go modules below, each under its own license, as the
license files at the root of the module's download say. Each text follows the table once, for every
module whose file holds exactly that text; ` + "`NOTICE`" + ` files are reproduced as the Apache License asks.
The plugin itself is under the Mozilla Public License 2.0 ([LICENSE](LICENSE)).

Generated: ` + "`NOTICES_UPDATE=1 go test -run TestThirdPartyNotices .`" + ` rewrites this file from ` + "`go list -deps`" + `
on each release platform and the module cache; ` + "`TestThirdPartyNotices`" + ` (in ` + "`make test`" + `) fails when it is out of date.

| module | version | license files | platforms |
|---|---|---|---|
`)
	type text struct {
		kind, name string
		body       []byte
		users      []string
	}
	texts := map[[32]byte]*text{}
	var order [][32]byte
	for _, m := range mods {
		var names []string
		for _, f := range m.files {
			label := "`" + f.name + "`"
			if f.kind != "" {
				label += " (" + f.kind + ")"
			}
			names = append(names, label)
			sum := sha256.Sum256(f.text)
			if texts[sum] == nil {
				texts[sum] = &text{kind: f.kind, name: f.name, body: f.text}
				order = append(order, sum)
			}
			texts[sum].users = append(texts[sum].users, m.path)
		}
		on := "all"
		if len(m.platforms) != len(platforms) {
			on = strings.Join(m.platforms, ", ")
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", m.path, m.version, strings.Join(names, ", "), on)
	}
	b.WriteString("\n## The texts\n")
	for i, sum := range order {
		t := texts[sum]
		if bytes.Contains(t.body, []byte("````")) {
			return nil, fmt.Errorf("the %s of %s holds a four-backtick fence", t.name, t.users[0])
		}
		title := t.kind
		if title == "" {
			title = "NOTICE"
		}
		fmt.Fprintf(&b, "\n### %d. %s\n\n`%s` of %s\n\n````text\n%s\n````\n", i+1, title, t.name, strings.Join(t.users, ", "),
			strings.TrimRight(string(t.body), "\n"))
	}
	return b.Bytes(), nil
}
