package main

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
)

// kind is how a Go type appears in TOML.
type kind int

const (
	scalar kind = iota // a TOML value: string, integer, boolean, …
	table              // a struct: a [section] of its own
	array              // a slice or array
	dict               // a map: a table of arbitrary keys
)

// tomlType is a resolved field type.
type tomlType struct {
	kind kind
	// name is the TOML type of a scalar ("string", "integer", …).
	name string
	// text is the Go type name of a scalar decoded by UnmarshalText
	// ("Duration"), else "".
	text string
	// st is the struct of a table.
	st *structType
	// elem is the element type of an array or dict.
	elem *tomlType
}

// structType is a struct declaration and the comment on its type.
type structType struct {
	name   string
	doc    string
	fields []field
}

// field is one TOML key of a struct, embedded structs flattened.
type field struct {
	goName string
	key    string
	doc    string
	typ    *tomlType
}

// loader parses the packages a config struct reaches, by import path.
type loader struct {
	fset   *token.FileSet
	prefix string // import path prefix of the repository, e.g. "github.com/alkdev/alknet/"
	root   string // directory the prefix maps to
	pkgs   map[string]*pkg
	// structs caches resolved structs by "dir.Name", which also ends
	// recursion through self-referencing types.
	structs map[string]*structType
}

// pkg is one parsed package directory.
type pkg struct {
	dir   string
	types map[string]typeDecl
	// textTypes are the type names with an UnmarshalText method.
	textTypes map[string]bool
}

// typeDecl is a type declaration and the imports of its file.
type typeDecl struct {
	spec    *ast.TypeSpec
	doc     string
	imports map[string]string // local name → import path
}

func newLoader(root, prefix string) *loader {
	return &loader{fset: token.NewFileSet(), prefix: prefix, root: root, pkgs: map[string]*pkg{}, structs: map[string]*structType{}}
}

// load parses the non-test Go files of dir (relative to the root).
func (l *loader) load(dir string) (*pkg, error) {
	if p, ok := l.pkgs[dir]; ok {
		return p, nil
	}
	names, err := filepath.Glob(filepath.Join(l.root, dir, "*.go"))
	if err != nil {
		return nil, err
	}
	p := &pkg{dir: dir, types: map[string]typeDecl{}, textTypes: map[string]bool{}}
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(l.fset, name, nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return nil, err
		}
		imports, err := l.imports(f)
		if err != nil {
			return nil, err
		}
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.GenDecl:
				for _, s := range d.Specs {
					ts, ok := s.(*ast.TypeSpec)
					if !ok {
						continue
					}
					doc := ts.Doc
					if doc == nil && len(d.Specs) == 1 {
						doc = d.Doc
					}
					p.types[ts.Name.Name] = typeDecl{spec: ts, doc: doc.Text(), imports: imports}
				}
			case *ast.FuncDecl:
				if d.Recv != nil && d.Name.Name == "UnmarshalText" {
					p.textTypes[receiverName(d.Recv.List[0].Type)] = true
				}
			}
		}
	}
	if len(p.types) == 0 {
		return nil, fmt.Errorf("no Go types in %s", filepath.Join(l.root, dir))
	}
	l.pkgs[dir] = p
	return p, nil
}

// imports maps each import's local name to its path. An unnamed import is
// known by the package name of its directory for repository packages and
// by the last path element otherwise.
func (l *loader) imports(f *ast.File) (map[string]string, error) {
	m := map[string]string{}
	for _, is := range f.Imports {
		path, err := strconv.Unquote(is.Path.Value)
		if err != nil {
			return nil, err
		}
		name := path[strings.LastIndex(path, "/")+1:]
		if is.Name != nil {
			name = is.Name.Name
		} else if dir, ok := strings.CutPrefix(path, l.prefix); ok {
			if name, err = l.packageName(dir); err != nil {
				return nil, err
			}
		}
		m[name] = path
	}
	return m, nil
}

// packageName reads the package clause of a repository directory.
func (l *loader) packageName(dir string) (string, error) {
	names, err := filepath.Glob(filepath.Join(l.root, dir, "*.go"))
	if err != nil {
		return "", err
	}
	for _, name := range names {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(l.fset, name, nil, parser.PackageClauseOnly)
		if err != nil {
			return "", err
		}
		return f.Name.Name, nil
	}
	return "", fmt.Errorf("no Go files in %s", filepath.Join(l.root, dir))
}

func receiverName(e ast.Expr) string {
	if s, ok := e.(*ast.StarExpr); ok {
		e = s.X
	}
	if id, ok := e.(*ast.Ident); ok {
		return id.Name
	}
	return ""
}

// named resolves the type name of package dir as TOML.
func (l *loader) named(dir, name string) (*tomlType, error) {
	p, err := l.load(dir)
	if err != nil {
		return nil, err
	}
	td, ok := p.types[name]
	if !ok {
		return nil, fmt.Errorf("type %s not found in %s", name, dir)
	}
	if p.textTypes[name] {
		return &tomlType{kind: scalar, name: "string", text: name}, nil
	}
	st, ok := td.spec.Type.(*ast.StructType)
	if !ok {
		return l.resolve(p, td.imports, td.spec.Type)
	}
	id := dir + "." + name
	if s, ok := l.structs[id]; ok {
		return &tomlType{kind: table, st: s}, nil
	}
	s := &structType{name: name, doc: td.doc}
	l.structs[id] = s
	if err := l.fields(p, td.imports, st, s); err != nil {
		return nil, fmt.Errorf("%s.%s: %w", dir, name, err)
	}
	return &tomlType{kind: table, st: s}, nil
}

// fields appends the TOML keys of st to s; an embedded struct without a
// toml tag adds its own keys.
func (l *loader) fields(p *pkg, imports map[string]string, st *ast.StructType, s *structType) error {
	for _, f := range st.Fields.List {
		var tag string
		if f.Tag != nil {
			raw, err := strconv.Unquote(f.Tag.Value)
			if err != nil {
				return err
			}
			tag = reflect.StructTag(raw).Get("toml")
		}
		key, _, _ := strings.Cut(tag, ",")
		if key == "-" {
			continue
		}
		t, err := l.resolve(p, imports, f.Type)
		if err != nil {
			return err
		}
		if len(f.Names) == 0 { // embedded
			if tag == "" && t.kind == table {
				s.fields = append(s.fields, t.st.fields...)
				continue
			}
			name := receiverName(f.Type)
			if sel, ok := f.Type.(*ast.SelectorExpr); ok {
				name = sel.Sel.Name
			}
			f.Names = []*ast.Ident{ast.NewIdent(name)}
		}
		for _, n := range f.Names {
			if !n.IsExported() {
				continue
			}
			k := key
			if k == "" {
				k = n.Name
			}
			s.fields = append(s.fields, field{goName: n.Name, key: k, doc: f.Doc.Text(), typ: t})
		}
	}
	return nil
}

// resolve turns a type expression of package p into its TOML form.
func (l *loader) resolve(p *pkg, imports map[string]string, e ast.Expr) (*tomlType, error) {
	switch e := e.(type) {
	case *ast.StarExpr:
		return l.resolve(p, imports, e.X)
	case *ast.ArrayType:
		elem, err := l.resolve(p, imports, e.Elt)
		if err != nil {
			return nil, err
		}
		if e.Len != nil || elem.kind != scalar || elem.name != "integer" || !isByte(e.Elt) {
			return &tomlType{kind: array, elem: elem}, nil
		}
		return &tomlType{kind: scalar, name: "string"}, nil // []byte
	case *ast.MapType:
		elem, err := l.resolve(p, imports, e.Value)
		if err != nil {
			return nil, err
		}
		return &tomlType{kind: dict, elem: elem}, nil
	case *ast.Ident:
		if s, ok := builtin[e.Name]; ok {
			return &tomlType{kind: scalar, name: s}, nil
		}
		return l.named(p.dir, e.Name)
	case *ast.SelectorExpr:
		x, ok := e.X.(*ast.Ident)
		if !ok {
			return nil, fmt.Errorf("unsupported type %T", e.X)
		}
		path, ok := imports[x.Name]
		if !ok {
			return nil, fmt.Errorf("unknown package %s", x.Name)
		}
		if dir, ok := strings.CutPrefix(path, l.prefix); ok {
			return l.named(dir, e.Sel.Name)
		}
		if s, ok := external[path+"."+e.Sel.Name]; ok {
			return &tomlType{kind: scalar, name: s}, nil
		}
		return nil, fmt.Errorf("type %s.%s: not a repository package and not known", path, e.Sel.Name)
	case *ast.StructType:
		s := &structType{}
		if err := l.fields(p, imports, e, s); err != nil {
			return nil, err
		}
		return &tomlType{kind: table, st: s}, nil
	}
	return nil, fmt.Errorf("unsupported type expression %T", e)
}

func isByte(e ast.Expr) bool {
	id, ok := e.(*ast.Ident)
	return ok && (id.Name == "byte" || id.Name == "uint8")
}

// builtin maps Go's predeclared types to TOML value types.
var builtin = map[string]string{
	"string": "string", "bool": "boolean",
	"int": "integer", "int8": "integer", "int16": "integer", "int32": "integer", "int64": "integer",
	"uint": "integer", "uint8": "integer", "uint16": "integer", "uint32": "integer", "uint64": "integer",
	"byte": "integer", "rune": "integer", "float32": "float", "float64": "float",
}

// external maps the types of other modules that config structs use.
var external = map[string]string{
	"time.Time": "date-time",
}
