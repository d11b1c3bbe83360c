package session

import (
	"encoding"
	"fmt"
	"math/big"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unsafe"

	"github.com/fxamacker/cbor/v2"
)

// This file decides, before a value is encoded, whether it can be stored
// faithfully, so that Session.Put refuses a bad value with the key, the type
// and the path to the part that fails, instead of a store or a replication
// failing later, or the process dying (fxamacker/cbor recurses on a cycle
// until the stack overflows, which no recover catches).
//
// The rules follow what fxamacker/cbor encodes (with the options of CBOR),
// and what encoding/json users expect of field visibility:
//
//   - nil, booleans, integers, floats and strings are fine.
//   - A func, a channel, an unsafe.Pointer, a uintptr or a complex number
//     cannot be encoded (fxamacker returns UnsupportedTypeError for each).
//     They are refused wherever they are reachable: in an exported struct
//     field, a slice or array element, a map key or value, a pointer's
//     target, or an interface's dynamic value.
//   - Where the type is known statically, the type decides: a field of type
//     func() is refused even when it is nil, and so is a []Item whose Item
//     has such a field even when the slice is empty. The next Put, with the
//     field set, would fail anyway, and fxamacker refuses most of these by
//     type too; deciding by type is what lets a value be checked without
//     looking at it.
//   - Struct fields are those fxamacker encodes: exported fields not tagged
//     `cbor:"-"` (or, without a cbor tag, `json:"-"`), with the fields of
//     embedded structs promoted as in encoding/json. Unexported fields are
//     skipped, not checked.
//   - A struct with fields but none that is encoded (all unexported or
//     tagged "-") is refused: fxamacker would store it as an empty map and
//     Get would return a zero value, which is data loss that shows much
//     later. A struct with no fields at all (struct{}) is fine: nothing is
//     lost.
//   - A type that encodes itself is fine whatever its fields: one that
//     implements cbor.Marshaler or encoding.BinaryMarshaler (on the value or
//     the pointer), and the types fxamacker encodes specially: time.Time,
//     big.Int, cbor.SimpleValue, cbor.RawMessage, cbor.ByteString.
//     (encoding.TextMarshaler and json.Marshaler are not used by the
//     codec, so they do not count.)
//   - A value that refers back to itself through pointers, maps or slices
//     is refused with the path at which the cycle closes. Values that merely
//     share a pointer (a DAG) are fine: they are encoded twice.
//   - A value nested more than cborMaxNestedLevels (128) structs, maps and
//     slices deep, such as a long linked list, is refused: the codec
//     would not read it back. (Marshal checks the exact encoded depth as
//     well; this check gives the common case a path.)
//   - Inside an interface value (an `any` field, a map[string]any), a map
//     must have string keys: the codec decodes maps in an interface as
//     map[string]any, so any other key would make the value unreadable.
//     Where the map's type is static (a map[int]string field, or the value
//     passed to Put, which Get decodes into its own type) any key type
//     works.
//
// Paths are Go-ish: ".Items[3].OnChange" for a field of an element,
// `["k"]` for a map value, "[key]" for something inside a map key, "" for
// the value itself; a promoted field is shown with its embedded struct
// (".Base.ID"). When a type-level refusal is not present in the value (an
// empty slice, a nil pointer), the path uses "[*]" for "any element". The
// first problem found is reported; in a map with several, which one is
// first depends on map order.
//
// Cost: the analysis of each reflect.Type is cached (in a sync.Map per
// context). For a type whose check is fully static (no interface anywhere
// in it, and no recursion through pointers, maps or slices, so no value of
// it can form a cycle) checking a value is one sync.Map lookup, with no
// allocation. Other types are walked, but only along the parts that can
// hold an interface or a cycle.

// Reasons, in plain English, for EncodeError.Reason.
const (
	encReasonFunc       = "a func cannot be encoded"
	encReasonChan       = "a channel cannot be encoded"
	encReasonUnsafe     = "unsafe.Pointer cannot be encoded"
	encReasonUintptr    = "a uintptr cannot be encoded"
	encReasonComplex    = "complex numbers cannot be encoded"
	encReasonCycle      = "the value refers back to itself (a cycle), which cannot be encoded"
	encReasonNoExported = "struct has no exported fields, so nothing of it would be stored; " +
		"export its fields or implement encoding.BinaryMarshaler / cbor.Marshaler"
	encReasonAllSkipped = "struct has no encoded fields (its exported fields are all tagged \"-\"), " +
		"so nothing of it would be stored; export its fields or implement encoding.BinaryMarshaler / cbor.Marshaler"
)

// encReasonTooDeep is for a value nested deeper than the codec decodes (see
// cborMaxNestedLevels): Marshal would refuse it anyway, without a path.
var encReasonTooDeep = "the value nests structs, maps and slices more than " + strconv.Itoa(cborMaxNestedLevels) +
	" levels deep, more than the codec reads back"

func encReasonLooseKeys(key reflect.Type) string {
	return "a map held in an interface (any) must have string keys to be read back, " +
		"since maps in an interface decode as map[string]any; this one has a key of type " + key.String()
}

// checkEncodable reports whether v can be encoded faithfully by the CBOR
// codec: nil if it can, else an *EncodeError with Type, Path, FieldType and
// Reason set (the caller sets Key). See the rules above. It runs on every
// Put, so the common cases cost little: basic types are decided by a type
// switch, other static types by one cached lookup.
func checkEncodable(v any) *EncodeError {
	var p *encPlan
	switch v.(type) {
	case nil, bool, string, []byte, time.Time,
		int, int8, int16, int32, int64,
		uint, uint8, uint16, uint32, uint64,
		float32, float64:
		return nil
	case map[string]any, []any:
		// Walked without reflection below.
	default:
		p = encPlanFor(reflect.TypeOf(v), false)
		if !p.check() {
			return nil
		}
	}
	w := encWalkers.Get().(*encWalker)
	var r *encRefusal
	if p == nil {
		r = w.walkAny(v)
	} else {
		r = w.walk(reflect.ValueOf(v), p)
	}
	w.reset()
	encWalkers.Put(w)
	if r == nil {
		return nil
	}
	return &EncodeError{Type: reflect.TypeOf(v).String(), Path: r.fullPath(), FieldType: r.fieldType, Reason: r.reason}
}

// encRefusal is why a value, or every value of a type, is refused. The
// path is relative to the value or type it was found for: path, then the
// segments in outer (innermost first) that walking added on the way back
// up. Collecting segments and joining once keeps a refusal deep in a long
// list linear, where prepending to a string would be quadratic.
type encRefusal struct {
	path      string
	outer     []string
	fieldType string
	reason    string
}

func (r *encRefusal) under(seg string) *encRefusal {
	if seg != "" {
		r.outer = append(r.outer, seg)
	}
	return r
}

// fullPath returns the path from the value walked.
func (r *encRefusal) fullPath() string {
	if len(r.outer) == 0 {
		return r.path
	}
	var b strings.Builder
	for _, seg := range slices.Backward(r.outer) {
		b.WriteString(seg)
	}
	b.WriteString(r.path)
	return b.String()
}

// encOp is what checking a value of a type involves.
type encOp uint8

const (
	encOpLeaf      encOp = iota // encodes as is; nothing inside to check
	encOpRefuse                 // never encodable
	encOpInterface              // check the dynamic value
	encOpPointer                // check the target (and cycles)
	encOpSlice                  // check the elements (and cycles)
	encOpArray                  // check the elements
	encOpMap                    // check keys and values (and cycles)
	encOpStruct                 // check the encoded fields
)

// encPlan is the cached analysis of one type in one context. Plans are
// immutable once stored in a cache; recursive types give cyclic plan
// graphs.
type encPlan struct {
	typ  reflect.Type
	op   encOp
	walk bool        // values must be walked: the type can hold an interface or be part of a cycle
	bad  *encRefusal // set when every value of the type is refused; the path is a template (see "[*]")

	elem      *encPlan // pointer target, slice, array or map element
	key       *encPlan // map key
	looseKeys bool     // a map in an interface with interface keys: each key must be a string
	fields    []encField
}

type encField struct {
	path  string // path segment, e.g. ".Items" or ".Base.ID" for a promoted field
	index []int  // as for reflect.Value.FieldByIndex, through embedded structs
	plan  *encPlan
}

// check reports whether values of the plan's type need looking at.
func (p *encPlan) check() bool { return p.walk || p.bad != nil }

// Plans are cached per context: typed (the type is known where the value
// is decoded: the value passed to Put, which Get decodes into its own
// type, and everything under it down to an interface) and loose (the value
// is in an interface, and is decoded into an `any`).
var encPlansTyped, encPlansLoose sync.Map // reflect.Type -> *encPlan

func encPlanFor(t reflect.Type, loose bool) *encPlan {
	cache := &encPlansTyped
	if loose {
		cache = &encPlansLoose
	}
	if p, ok := cache.Load(t); ok {
		return p.(*encPlan)
	}
	b := encPlanBuilder{loose: loose, cache: cache, byType: make(map[reflect.Type]*encPlan)}
	p := b.plan(t)
	b.settle()
	// Publish only complete plans. If another goroutine built the same
	// types meanwhile, either result is correct; keep the first.
	for _, q := range b.made {
		cache.LoadOrStore(q.typ, q)
	}
	return p
}

// encPlanBuilder builds the plans of a type and of the types it reaches
// that are not cached yet.
type encPlanBuilder struct {
	loose  bool
	cache  *sync.Map
	byType map[reflect.Type]*encPlan
	made   []*encPlan // in creation order, so that results are deterministic
	stack  []*encPlan // plans being built, outermost first
}

func (b *encPlanBuilder) plan(t reflect.Type) *encPlan {
	if p, ok := b.cache.Load(t); ok {
		return p.(*encPlan)
	}
	if p, ok := b.byType[t]; ok {
		// t is being built: the types on the stack from t up form a cycle
		// (through a pointer, map or slice), so their values can refer back
		// to themselves.
		if i := slices.Index(b.stack, p); i >= 0 {
			for _, q := range b.stack[i:] {
				q.walk = true
			}
		}
		return p
	}
	p := &encPlan{typ: t}
	b.byType[t] = p
	b.made = append(b.made, p)
	b.stack = append(b.stack, p)
	b.fill(p)
	b.stack = b.stack[:len(b.stack)-1]
	b.derive(p)
	return p
}

var (
	encTypeCBORMarshaler   = reflect.TypeFor[cbor.Marshaler]()
	encTypeBinaryMarshaler = reflect.TypeFor[encoding.BinaryMarshaler]()
)

// encodesItself reports whether fxamacker encodes t without looking at its
// fields or elements: its special types, and Marshaler implementations
// (which it finds through the pointer type, as here).
func encodesItself(t reflect.Type) bool {
	switch t {
	case reflect.TypeFor[time.Time](), reflect.TypeFor[big.Int](),
		reflect.TypeFor[cbor.SimpleValue](), reflect.TypeFor[cbor.RawMessage](),
		reflect.TypeFor[cbor.ByteString]():
		return true
	}
	pt := reflect.PointerTo(t)
	return pt.Implements(encTypeCBORMarshaler) || pt.Implements(encTypeBinaryMarshaler)
}

func (b *encPlanBuilder) fill(p *encPlan) {
	t := p.typ
	k := t.Kind()
	if k != reflect.Pointer && k != reflect.Interface && encodesItself(t) {
		p.op = encOpLeaf
		return
	}
	refuse := func(reason string) {
		p.op = encOpRefuse
		p.bad = &encRefusal{fieldType: t.String(), reason: reason}
	}
	switch k {
	case reflect.Func:
		refuse(encReasonFunc)
	case reflect.Chan:
		refuse(encReasonChan)
	case reflect.UnsafePointer:
		refuse(encReasonUnsafe)
	case reflect.Uintptr:
		refuse(encReasonUintptr)
	case reflect.Complex64, reflect.Complex128:
		refuse(encReasonComplex)
	case reflect.Interface:
		p.op = encOpInterface
		p.walk = true
	case reflect.Pointer:
		p.op = encOpPointer
		p.elem = b.plan(t.Elem())
	case reflect.Slice:
		if t.Elem().Kind() == reflect.Uint8 {
			p.op = encOpLeaf // a byte string, whatever the element type
			return
		}
		p.op = encOpSlice
		p.elem = b.plan(t.Elem())
	case reflect.Array:
		p.op = encOpArray
		p.elem = b.plan(t.Elem())
	case reflect.Map:
		p.op = encOpMap
		p.key = b.plan(t.Key())
		p.elem = b.plan(t.Elem())
		if b.loose {
			switch t.Key().Kind() {
			case reflect.String:
			case reflect.Interface:
				p.looseKeys = true
				p.walk = true
			default:
				p.bad = &encRefusal{fieldType: t.String(), reason: encReasonLooseKeys(t.Key())}
			}
		}
	case reflect.Struct:
		p.op = encOpStruct
		for _, f := range encodedFields(t) {
			p.fields = append(p.fields, encField{path: f.path, index: f.index, plan: b.plan(f.typ)})
		}
		if len(p.fields) == 0 {
			if r := encNoFieldsReason(t); r != "" {
				p.bad = &encRefusal{fieldType: t.String(), reason: r}
			}
		}
	default: // booleans, integers, floats, strings
		p.op = encOpLeaf
	}
}

// encNoFieldsReason says why a struct with no encoded fields is refused, or
// returns "" if it has no fields to lose (struct{}, or only blank fields).
func encNoFieldsReason(t reflect.Type) string {
	reason := ""
	for i := range t.NumField() {
		f := t.Field(i)
		if f.Name == "_" {
			continue
		}
		if f.IsExported() {
			return encReasonAllSkipped
		}
		reason = encReasonNoExported
	}
	return reason
}

// derive updates p from its children: p needs a walk if a child does, and
// is refused (by type) if a child is, with the first such child's path.
// It reports whether p changed.
func (b *encPlanBuilder) derive(p *encPlan) bool {
	changed := false
	child := func(seg string, c *encPlan) {
		if c.walk && !p.walk {
			p.walk = true
			changed = true
		}
		if c.bad != nil && p.bad == nil {
			p.bad = &encRefusal{path: seg + c.bad.path, fieldType: c.bad.fieldType, reason: c.bad.reason}
			changed = true
		}
	}
	switch p.op {
	case encOpPointer:
		child("", p.elem)
	case encOpSlice, encOpArray:
		child("[*]", p.elem)
	case encOpMap:
		child("[key]", p.key)
		child("[*]", p.elem)
	case encOpStruct:
		for _, f := range p.fields {
			child(f.path, f.plan)
		}
	}
	return changed
}

// settle propagates walk and bad around the cycles of recursive types,
// which derive saw half-built. Both only ever go from unset to set, so this
// ends.
func (b *encPlanBuilder) settle() {
	for changed := true; changed; {
		changed = false
		for _, p := range b.made {
			if b.derive(p) {
				changed = true
			}
		}
	}
}

// encStructField is a field fxamacker encodes.
type encStructField struct {
	name     string // the key it is encoded under
	keyAsInt bool
	tagged   bool
	path     string
	index    []int
	typ      reflect.Type
}

// encodedFields returns the fields of struct type t that fxamacker/cbor
// encodes, in field order. It follows the library's collectFields (the
// encoding/json rules): exported fields not tagged "-", fields of embedded
// structs promoted, and, among fields of the same name, the least nested
// (tagged first) wins while equally good ones cancel out.
func encodedFields(t reflect.Type) []encStructField {
	type embedded struct {
		index []int
		path  string
	}
	var flds []encStructField
	appendFields := func(t reflect.Type, idx []int, path string, next map[reflect.Type][]embedded) map[reflect.Type][]embedded {
		for i := range t.NumField() {
			f := t.Field(i)
			ft := f.Type
			for ft.Kind() == reflect.Pointer {
				ft = ft.Elem()
			}
			if !f.IsExported() && !(f.Anonymous && ft.Kind() == reflect.Struct) {
				continue
			}
			tag := f.Tag.Get("cbor")
			if tag == "" {
				tag = f.Tag.Get("json")
			}
			if tag == "-" {
				continue
			}
			name, opts, _ := strings.Cut(tag, ",")
			fIdx := append(slices.Clip(idx), i)
			fPath := path + "." + f.Name
			if f.Anonymous && ft.Kind() == reflect.Struct && name == "" {
				if next == nil {
					next = make(map[reflect.Type][]embedded)
				}
				next[ft] = append(next[ft], embedded{fIdx, fPath})
				continue
			}
			keyAsInt := false
			for o := range strings.SplitSeq(opts, ",") {
				keyAsInt = keyAsInt || o == "keyasint"
			}
			if name == "" {
				name = f.Name
			} else if keyAsInt {
				if n, err := strconv.Atoi(name); err == nil {
					name = strconv.Itoa(n)
				}
			}
			flds = append(flds, encStructField{name: name, keyAsInt: keyAsInt, tagged: tag != "",
				path: fPath, index: fIdx, typ: f.Type})
		}
		return next
	}

	next := appendFields(t, nil, "", nil)
	visited := map[reflect.Type]bool{t: true}
	for len(next) > 0 {
		cur := next
		next = nil
		// Sorted so that the result does not depend on map order.
		types := make([]reflect.Type, 0, len(cur))
		for et := range cur {
			types = append(types, et)
		}
		slices.SortFunc(types, func(a, b reflect.Type) int { return slices.Compare(cur[a][0].index, cur[b][0].index) })
		for _, et := range types {
			embs := cur[et]
			if len(embs) > 1 || visited[et] {
				continue // the same struct twice at a level, or again deeper: ignored
			}
			visited[et] = true
			next = appendFields(et, embs[0].index, embs[0].path, next)
		}
	}

	// Keep, for each name, the dominant field, if there is one.
	slices.SortStableFunc(flds, func(a, b encStructField) int {
		if a.name != b.name {
			return strings.Compare(a.name, b.name)
		}
		if a.keyAsInt != b.keyAsInt {
			if a.keyAsInt {
				return -1
			}
			return 1
		}
		if len(a.index) != len(b.index) {
			return len(a.index) - len(b.index)
		}
		if a.tagged != b.tagged {
			if a.tagged {
				return -1
			}
			return 1
		}
		return slices.Compare(a.index, b.index)
	})
	out := flds[:0]
	for i := 0; i < len(flds); {
		f := flds[i]
		j := i + 1
		for j < len(flds) && flds[j].name == f.name && flds[j].keyAsInt == f.keyAsInt {
			j++
		}
		if j == i+1 || len(f.index) < len(flds[i+1].index) || (f.tagged && !flds[i+1].tagged) {
			out = append(out, f)
		}
		i = j
	}
	slices.SortFunc(out, func(a, b encStructField) int { return slices.Compare(a.index, b.index) })
	return out
}

// encWalker walks a value along its plan. stack holds the pointers, maps
// and slices being walked (the current path), to find cycles; seen mirrors
// it once it is deep, so that a long list is not quadratic.
type encWalker struct {
	stack []encVisit
	seen  map[encVisit]struct{}
	buf   [16]encVisit
	depth int // structs, maps, slices and arrays being walked: CBOR nesting
}

// encVisit identifies a pointer, map or slice being walked. The type is
// part of it because a pointer to a struct and a pointer to its first field
// share an address; the length because a slice and a shorter slice of it
// share one.
type encVisit struct {
	ptr unsafe.Pointer // first: most comparisons fail on it, before the type's
	n   int
	typ reflect.Type
}

const encSeenAfter = 32

// Walkers are pooled: their path stack would otherwise be allocated on each
// walk.
var encWalkers = sync.Pool{New: func() any {
	w := new(encWalker)
	w.stack = w.buf[:0]
	return w
}}

func (w *encWalker) reset() {
	w.seen = nil
	w.depth = 0
	if cap(w.stack) > 1024 {
		w.stack = w.buf[:0] // do not keep a huge stack from a long list
	}
	w.stack = w.stack[:0]
}

// enter pushes vis, or reports false if it is already on the path: a
// cycle.
func (w *encWalker) enter(vis encVisit) bool {
	if w.seen != nil {
		if _, ok := w.seen[vis]; ok {
			return false
		}
		w.seen[vis] = struct{}{}
	} else if slices.Contains(w.stack, vis) {
		return false
	}
	w.stack = append(w.stack, vis)
	if w.seen == nil && len(w.stack) > encSeenAfter {
		w.seen = make(map[encVisit]struct{}, 2*len(w.stack))
		for _, s := range w.stack {
			w.seen[s] = struct{}{}
		}
	}
	return true
}

func (w *encWalker) leave() {
	vis := w.stack[len(w.stack)-1]
	w.stack = w.stack[:len(w.stack)-1]
	if w.seen != nil {
		delete(w.seen, vis)
	}
}

func encCycleAt(t reflect.Type) *encRefusal {
	return &encRefusal{fieldType: t.String(), reason: encReasonCycle}
}

// descend counts one more level of nesting (a struct, map, slice or array
// whose contents are walked; each is one CBOR map or array), or refuses
// the value once it is deeper than the codec decodes. Counting only what
// is walked undercounts (static parts are not walked); Marshal checks the
// exact depth, so this only gives the common deep case (a long list) a
// path, and bounds the walk's own recursion.
func (w *encWalker) descend(t reflect.Type) *encRefusal {
	if w.depth >= cborMaxNestedLevels {
		return &encRefusal{fieldType: t.String(), reason: encReasonTooDeep}
	}
	w.depth++
	return nil
}

func (w *encWalker) ascend() { w.depth-- }

// walk checks v, of plan p's type. If p refuses every value of its type but
// v does not contain the offending part (an empty slice, a nil pointer),
// the refusal is p's, with its template path.
func (w *encWalker) walk(v reflect.Value, p *encPlan) *encRefusal {
	if !p.check() {
		return nil
	}
	if r := w.walkValue(v, p); r != nil {
		return r
	}
	if p.bad != nil {
		return &encRefusal{path: p.bad.path, fieldType: p.bad.fieldType, reason: p.bad.reason}
	}
	return nil
}

func (w *encWalker) walkValue(v reflect.Value, p *encPlan) *encRefusal {
	switch p.op {
	case encOpRefuse:
		return &encRefusal{fieldType: p.typ.String(), reason: p.bad.reason}
	case encOpInterface:
		return w.walkInterface(v)
	case encOpPointer:
		return w.walkPointer(v, p)
	case encOpSlice:
		return w.walkSlice(v, p)
	case encOpArray:
		return w.walkArray(v, p)
	case encOpMap:
		if p.typ == encTypeMapStringAny && v.CanInterface() {
			return w.walkMapStringAny(v.Interface().(map[string]any)) // no reflection, no allocation
		}
		return w.walkMap(v, p)
	case encOpStruct:
		return w.walkStruct(v, p)
	}
	return nil
}

// The walks of each kind are separate functions so that each has few
// returns and defers, which keeps its defers cheap (open-coded).

func (w *encWalker) walkInterface(v reflect.Value) *encRefusal {
	if v.IsNil() {
		return nil
	}
	if v.CanInterface() {
		return w.walkAny(v.Interface())
	}
	e := v.Elem()
	if encBasicKind(e.Kind()) {
		return nil
	}
	return w.walk(e, encPlanFor(e.Type(), true))
}

func (w *encWalker) walkPointer(v reflect.Value, p *encPlan) *encRefusal {
	if v.IsNil() {
		return nil
	}
	if !w.enter(encVisit{v.UnsafePointer(), 0, p.typ}) {
		return encCycleAt(p.typ)
	}
	r := w.walk(v.Elem(), p.elem)
	w.leave()
	return r
}

func (w *encWalker) walkSlice(v reflect.Value, p *encPlan) *encRefusal {
	if p.typ == encTypeSliceAny {
		// The type is exactly []any: view it as one, without the
		// allocation v.Interface() makes for an addressable slice.
		return w.walkSliceAny(unsafe.Slice((*any)(v.UnsafePointer()), v.Len()))
	}
	n := v.Len()
	if n == 0 || !p.elem.check() {
		return nil
	}
	if !w.enter(encVisit{v.UnsafePointer(), n, p.typ}) {
		return encCycleAt(p.typ)
	}
	defer w.leave()
	if r := w.descend(p.typ); r != nil {
		return r
	}
	defer w.ascend()
	for i := range n {
		if r := w.walk(v.Index(i), p.elem); r != nil {
			return r.under("[" + strconv.Itoa(i) + "]")
		}
	}
	return nil
}

func (w *encWalker) walkArray(v reflect.Value, p *encPlan) *encRefusal {
	if !p.elem.check() || v.Len() == 0 {
		return nil
	}
	if r := w.descend(p.typ); r != nil {
		return r
	}
	defer w.ascend()
	for i := range v.Len() {
		if r := w.walk(v.Index(i), p.elem); r != nil {
			return r.under("[" + strconv.Itoa(i) + "]")
		}
	}
	return nil
}

func (w *encWalker) walkStruct(v reflect.Value, p *encPlan) *encRefusal {
	if r := w.descend(p.typ); r != nil {
		return r
	}
	defer w.ascend()
	for _, f := range p.fields {
		if !f.plan.check() {
			continue
		}
		fv, ok := encFieldValue(v, f.index)
		if !ok {
			continue
		}
		if r := w.walk(fv, f.plan); r != nil {
			return r.under(f.path)
		}
	}
	return nil
}

func (w *encWalker) walkMap(v reflect.Value, p *encPlan) *encRefusal {
	if v.Len() == 0 {
		return nil
	}
	keys, elems := p.key.check() || p.looseKeys, p.elem.check()
	if !keys && !elems {
		return nil
	}
	if !w.enter(encVisit{v.UnsafePointer(), 0, p.typ}) {
		return encCycleAt(p.typ)
	}
	defer w.leave()
	if r := w.descend(p.typ); r != nil {
		return r
	}
	defer w.ascend()
	// Reuse one key and one element Value for the whole map, so that
	// iterating does not allocate per entry. SetIterKey refuses a map read
	// through an unexported field; that cannot happen here (such fields are
	// skipped), but fall back to the allocating calls rather than panic.
	reuse := v.CanInterface()
	k := reflect.New(p.typ.Key()).Elem()
	e := reflect.New(p.typ.Elem()).Elem()
	var it reflect.MapIter
	it.Reset(v)
	for it.Next() {
		if reuse {
			k.SetIterKey(&it)
		} else {
			k = it.Key()
		}
		if keys {
			if p.looseKeys && (k.IsNil() || k.Elem().Kind() != reflect.String) {
				kt := p.typ.Key()
				if !k.IsNil() {
					kt = k.Elem().Type()
				}
				return &encRefusal{fieldType: p.typ.String(), reason: encReasonLooseKeys(kt)}
			}
			if r := w.walk(k, p.key); r != nil {
				return r.under("[key]")
			}
		}
		if elems {
			if reuse {
				e.SetIterValue(&it)
			} else {
				e = it.Value()
			}
			if r := w.walk(e, p.elem); r != nil {
				return r.under("[" + encFormatKey(k) + "]")
			}
		}
	}
	return nil
}

var (
	encTypeMapStringAny = reflect.TypeFor[map[string]any]()
	encTypeSliceAny     = reflect.TypeFor[[]any]()
)

// walkAny checks x, a value held in an interface. The common dynamic
// shapes (basic values, map[string]any, []any) are handled without
// reflection or a cache lookup; others go through their loose plan.
func (w *encWalker) walkAny(x any) *encRefusal {
	switch x := x.(type) {
	case nil, bool, string, []byte, time.Time,
		int, int8, int16, int32, int64,
		uint, uint8, uint16, uint32, uint64,
		float32, float64:
		return nil
	case map[string]any:
		return w.walkMapStringAny(x)
	case []any:
		return w.walkSliceAny(x)
	}
	v := reflect.ValueOf(x)
	if encBasicKind(v.Kind()) {
		return nil
	}
	return w.walk(v, encPlanFor(v.Type(), true))
}

// walkMapStringAny is walkMap for a map[string]any. The visit has the same
// identity as through reflection, so cycles mixing both are found.
func (w *encWalker) walkMapStringAny(m map[string]any) *encRefusal {
	if len(m) == 0 {
		return nil
	}
	if !w.enter(encVisit{reflect.ValueOf(m).UnsafePointer(), 0, encTypeMapStringAny}) {
		return encCycleAt(encTypeMapStringAny)
	}
	defer w.leave()
	if r := w.descend(encTypeMapStringAny); r != nil {
		return r
	}
	defer w.ascend()
	for k, x := range m {
		if r := w.walkAny(x); r != nil {
			return r.under("[" + strconv.Quote(k) + "]")
		}
	}
	return nil
}

// walkSliceAny is the encOpSlice walk for a []any.
func (w *encWalker) walkSliceAny(s []any) *encRefusal {
	if len(s) == 0 {
		return nil
	}
	if !w.enter(encVisit{unsafe.Pointer(unsafe.SliceData(s)), len(s), encTypeSliceAny}) {
		return encCycleAt(encTypeSliceAny)
	}
	defer w.leave()
	if r := w.descend(encTypeSliceAny); r != nil {
		return r
	}
	defer w.ascend()
	for i, x := range s {
		if r := w.walkAny(x); r != nil {
			return r.under("[" + strconv.Itoa(i) + "]")
		}
	}
	return nil
}

// encFieldValue returns the field of struct v at index, following embedded
// pointers; false if one of them is nil (fxamacker then skips the field).
func encFieldValue(v reflect.Value, index []int) (reflect.Value, bool) {
	for i, x := range index {
		if i > 0 && v.Kind() == reflect.Pointer {
			if v.IsNil() {
				return reflect.Value{}, false
			}
			v = v.Elem()
		}
		v = v.Field(x)
	}
	return v, true
}

func encBasicKind(k reflect.Kind) bool {
	switch k {
	case reflect.Bool, reflect.String,
		reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return true
	}
	return false
}

// encFormatKey renders a map key for a path: quoted if it is a string, as Go
// prints it otherwise.
func encFormatKey(k reflect.Value) string {
	if k.Kind() == reflect.Interface && !k.IsNil() {
		k = k.Elem()
	}
	switch k.Kind() {
	case reflect.String:
		return strconv.Quote(k.String())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(k.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(k.Uint(), 10)
	}
	if k.CanInterface() {
		return fmt.Sprintf("%v", k.Interface())
	}
	return k.Type().String()
}
