package session

import (
	"errors"
	"fmt"
	"math/big"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"
)

// Types for the checkEncodable tests; "enc" prefixed to stay out of the
// way of the rest of the package.

type encItem struct {
	SKU      string
	OnChange func()
}

type encOrder struct {
	ID    int
	Items []encItem
}

type encWithChan struct {
	Name string
	Done chan struct{}
}

type encNode struct {
	V    int
	Next *encNode
}

type encHidden struct {
	a int
	b string
}

type encMixed struct {
	Name   string
	Tags   []string
	secret func()
	count  int
}

type encAllDashed struct {
	X int `json:"-"`
	y int
}

type encTagged struct {
	Name  string
	Skip  func()   `cbor:"-"`
	Skip2 chan int `json:"-"`
}

// encBin has only unexported fields but encodes itself.
type encBin struct {
	a int
	b string
}

func (e encBin) MarshalBinary() ([]byte, error) {
	return fmt.Appendf(nil, "%d:%s", e.a, e.b), nil
}

func (e *encBin) UnmarshalBinary(data []byte) error {
	_, err := fmt.Sscanf(string(data), "%d:%s", &e.a, &e.b)
	return err
}

// encPtrBin implements BinaryMarshaler on the pointer only.
type encPtrBin struct{ n int }

func (e *encPtrBin) MarshalBinary() ([]byte, error) { return []byte{byte(e.n)}, nil }

type encHolder struct {
	Name string
	Any  any
}

type encBase struct {
	ID int
	F  func()
}

type encEmbeds struct {
	encBase
	X int
}

type encEmbedsPtr struct {
	*encOKBase
	X int
}

type encOKBase struct{ ID int }

// encLocked embeds a mutex: its fields are unexported, so nothing is
// promoted, and N is still stored.
type encLocked struct {
	sync.Mutex
	N int
}

type encStamp struct {
	At  time.Time
	Ptr *time.Time
	Big *big.Int
}

type encTree struct {
	Name     string
	Children []encTree
}

type encDAG struct {
	A, B *encNode
}

type encKeyed struct {
	Subs map[chan int]string
}

type encDeep struct {
	Orders map[string][]encOrder
}

func TestCheckEncodable(t *testing.T) {
	fn := func() {}
	ch := make(chan int)

	ring := &encNode{V: 1}
	ring.Next = &encNode{V: 2, Next: ring}

	self := map[string]any{"a": 1}
	self["self"] = self

	sliceSelf := make([]any, 2)
	sliceSelf[0] = "x"
	sliceSelf[1] = sliceSelf

	holderCycle := &encHolder{Name: "h"}
	holderCycle.Any = holderCycle

	shared := &encNode{V: 7}
	now := time.Now()

	tree := encTree{Name: "root", Children: []encTree{{Name: "a"}, {Name: "b", Children: []encTree{{Name: "c"}}}}}
	treeCycle := encTree{Name: "root", Children: make([]encTree, 1)}
	treeCycle.Children[0].Children = treeCycle.Children

	type want struct{ path, fieldType, reason string }
	ok := (*want)(nil)
	tests := []struct {
		name string
		v    any
		want *want
	}{
		// Fine.
		{"nil", nil, ok},
		{"int", 42, ok},
		{"string", "x", ok},
		{"bytes", []byte("x"), ok},
		{"named string", reflect.Kind(3), ok},
		{"time", now, ok},
		{"*time", &now, ok},
		{"big.Int", *big.NewInt(5), ok},
		{"*big.Int", big.NewInt(5), ok},
		{"struct with time and big", encStamp{At: now, Ptr: &now, Big: big.NewInt(1)}, ok},
		{"empty struct", struct{}{}, ok},
		{"mixed fields", encMixed{Name: "n", secret: fn, count: 1}, ok},
		{"tagged away func and chan", encTagged{Name: "n", Skip: fn, Skip2: ch}, ok},
		{"binary marshaler with unexported fields", encBin{1, "x"}, ok},
		{"pointer-receiver binary marshaler", encPtrBin{3}, ok},
		{"slice of binary marshalers", []encBin{{1, "x"}}, ok},
		{"nil pointer", (*encNode)(nil), ok},
		{"list", encList(10), ok},
		{"shared pointer (DAG)", encDAG{A: shared, B: shared}, ok},
		{"tree", tree, ok},
		{"map[int]string at the top", map[int]string{1: "a"}, ok},
		{"map[string]any", map[string]any{"n": 1, "s": "x", "l": []any{1, "x", now}, "m": map[string]any{"k": 1.5}}, ok},
		{"interface holding a struct", encHolder{Any: encStamp{At: now}}, ok},
		{"interface holding nil", encHolder{}, ok},
		{"embedded nil pointer", encEmbedsPtr{X: 1}, ok},
		{"embedded pointer", encEmbedsPtr{encOKBase: &encOKBase{ID: 1}}, ok},
		{"map with any keys at the top", map[any]int{1: 1, "a": 2}, ok},
		{"embedded mutex", encLocked{N: 1}, ok},

		// Common values that would lose data.
		{"error value", errors.New("boom"), &want{"", "errors.errorString", encReasonNoExported}},
		{"exported mutex field", struct{ Mu sync.Mutex }{}, &want{".Mu", "sync.Mutex", encReasonNoExported}},

		// Funcs.
		{"func", fn, &want{"", "func()", encReasonFunc}},
		{"func in a nested struct in a slice",
			encOrder{ID: 1, Items: []encItem{{SKU: "a"}, {SKU: "b", OnChange: fn}}},
			&want{".Items[0].OnChange", "func()", encReasonFunc}},
		{"func in a struct in an empty slice", encOrder{ID: 1},
			&want{".Items[*].OnChange", "func()", encReasonFunc}},
		{"func deep in a map of slices",
			encDeep{Orders: map[string][]encOrder{"o": {{Items: []encItem{{}}}}}},
			&want{`.Orders["o"][0].Items[0].OnChange`, "func()", encReasonFunc}},
		{"interface field holding a func", encHolder{Name: "h", Any: fn},
			&want{".Any", "func()", encReasonFunc}},
		{"func in []any", []any{1, "x", fn}, &want{"[2]", "func()", encReasonFunc}},
		{"func in a promoted field", encEmbeds{X: 1},
			&want{".encBase.F", "func()", encReasonFunc}},
		{"pointer to a struct with a func", &encItem{SKU: "x"},
			&want{".OnChange", "func()", encReasonFunc}},

		// Channels.
		{"chan", ch, &want{"", "chan int", encReasonChan}},
		{"chan in a map value", map[string]encWithChan{"k": {Name: "n"}},
			&want{`["k"].Done`, "chan struct {}", encReasonChan}},
		{"chan as a map value", map[string]chan int{"k": ch},
			&want{`["k"]`, "chan int", encReasonChan}},
		{"chan as a map key", encKeyed{Subs: map[chan int]string{ch: "x"}},
			&want{".Subs[key]", "chan int", encReasonChan}},
		{"chan behind an interface and a pointer", encHolder{Any: &encWithChan{}},
			&want{".Any.Done", "chan struct {}", encReasonChan}},

		// Other unencodable kinds.
		{"unsafe.Pointer", unsafe.Pointer(&now), &want{"", "unsafe.Pointer", encReasonUnsafe}},
		{"uintptr", uintptr(1), &want{"", "uintptr", encReasonUintptr}},
		{"complex", complex(1, 2), &want{"", "complex128", encReasonComplex}},
		{"complex in []any", []any{complex64(1)}, &want{"[0]", "complex64", encReasonComplex}},

		// Cycles.
		{"cycle via pointer", ring, &want{".Next.Next", "*session.encNode", encReasonCycle}},
		{"cycle via map", self, &want{`["self"]`, "map[string]interface {}", encReasonCycle}},
		{"cycle via slice", sliceSelf, &want{"[1]", "[]interface {}", encReasonCycle}},
		{"cycle via interface field", holderCycle, &want{".Any", "*session.encHolder", encReasonCycle}},
		{"cycle via a recursive slice type", treeCycle,
			&want{".Children[0].Children", "[]session.encTree", encReasonCycle}},

		// Structs with nothing to store.
		{"unexported-only struct", encHidden{1, "x"},
			&want{"", "session.encHidden", encReasonNoExported}},
		{"pointer to unexported-only struct", &encHidden{},
			&want{"", "session.encHidden", encReasonNoExported}},
		{"unexported-only struct in a field", struct{ H encHidden }{},
			&want{".H", "session.encHidden", encReasonNoExported}},
		{"unexported-only struct behind an interface", []any{encHidden{}},
			&want{"[0]", "session.encHidden", encReasonNoExported}},
		{"exported fields all tagged -", encAllDashed{X: 1},
			&want{"", "session.encAllDashed", encReasonAllSkipped}},

		// Maps that could not be read back inside an interface.
		{"map[int]string in an interface", map[string]any{"h": map[int]string{1: "a"}},
			&want{`["h"]`, "map[int]string", encReasonLooseKeys(reflect.TypeFor[int]())}},
		{"map[any]any with an int key in an interface", encHolder{Any: map[any]any{"a": 1, 2: "b"}},
			&want{".Any", "map[interface {}]interface {}", encReasonLooseKeys(reflect.TypeFor[int]())}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkEncodable(tt.v)
			if tt.want == nil {
				if got != nil {
					t.Fatalf("checkEncodable(%T) = %v, want nil", tt.v, got)
				}
				return
			}
			if got == nil {
				t.Fatalf("checkEncodable(%T) = nil, want refusal at %q", tt.v, tt.want.path)
			}
			if got.Key != "" || got.Err != nil {
				t.Errorf("Key, Err = %q, %v, want empty", got.Key, got.Err)
			}
			if typ := fmt.Sprintf("%T", tt.v); got.Type != typ {
				t.Errorf("Type = %q, want %q", got.Type, typ)
			}
			if got.Path != tt.want.path {
				t.Errorf("Path = %q, want %q", got.Path, tt.want.path)
			}
			if got.FieldType != tt.want.fieldType {
				t.Errorf("FieldType = %q, want %q", got.FieldType, tt.want.fieldType)
			}
			if got.Reason != tt.want.reason {
				t.Errorf("Reason = %q, want %q", got.Reason, tt.want.reason)
			}
		})
	}
}

// TestCheckEncodableAgreesWithCodec checks that what checkEncodable accepts
// the codec encodes and decodes back into the same type, and records what
// the codec does with values checkEncodable refuses (cycles are left out:
// fxamacker would overflow the stack).
func TestCheckEncodableAgreesWithCodec(t *testing.T) {
	now := time.Now()
	accepted := []any{
		42, "x", now, encStamp{At: now, Big: big.NewInt(1)}, encMixed{Name: "n"},
		encBin{1, "x"}, map[int]string{1: "a"}, encHolder{Any: []any{1, "x"}},
		encTree{Name: "r", Children: []encTree{{Name: "c"}}}, struct{}{},
	}
	for _, v := range accepted {
		if err := checkEncodable(v); err != nil {
			t.Fatalf("checkEncodable(%T) = %v", v, err)
		}
		b, err := CBOR().Marshal(v)
		if err != nil {
			t.Fatalf("Marshal(%T): %v", v, err)
		}
		p := reflect.New(reflect.TypeOf(v))
		if err := CBOR().Unmarshal(b, p.Interface()); err != nil {
			t.Fatalf("Unmarshal into %T: %v", v, err)
		}
	}

	// Refused by checkEncodable and by the codec.
	for _, v := range []any{encOrder{Items: []encItem{{}}}, encHolder{Any: func() {}}, complex(1, 1)} {
		if checkEncodable(v) == nil {
			t.Errorf("checkEncodable(%T) accepted", v)
		}
		if _, err := CBOR().Marshal(v); err == nil {
			t.Errorf("Marshal(%T) succeeded; checkEncodable refuses it", v)
		}
	}
	// Refused by checkEncodable although the codec encodes them: the
	// codec's output loses data (an empty map) or cannot be read back.
	for _, v := range []any{encHidden{1, "x"}, map[string]any{"m": map[int]string{1: "a"}}} {
		if checkEncodable(v) == nil {
			t.Errorf("checkEncodable(%T) accepted", v)
		}
		if _, err := CBOR().Marshal(v); err != nil {
			t.Logf("Marshal(%T) refused too: %v", v, err)
		}
	}
}

func encList(n int) *encNode {
	var head *encNode
	for i := range n {
		head = &encNode{V: i, Next: head}
	}
	return head
}

func TestCheckEncodableDepth(t *testing.T) {
	// As deep as the codec reads back: fine, and the codec agrees.
	ok := encList(cborMaxNestedLevels)
	if err := checkEncodable(ok); err != nil {
		t.Fatalf("list of %d: %v", cborMaxNestedLevels, err)
	}
	b, err := CBOR().Marshal(ok)
	if err != nil {
		t.Fatalf("Marshal list of %d: %v", cborMaxNestedLevels, err)
	}
	if err := CBOR().Unmarshal(b, new(*encNode)); err != nil {
		t.Fatalf("Unmarshal list of %d: %v", cborMaxNestedLevels, err)
	}

	// One more: refused, by both.
	deep := encList(cborMaxNestedLevels + 1)
	err2 := checkEncodable(deep)
	if err2 == nil || err2.Reason != encReasonTooDeep {
		t.Fatalf("list of %d: %v, want too deep", cborMaxNestedLevels+1, err2)
	}
	if want := strings.Repeat(".Next", cborMaxNestedLevels); err2.Path != want || err2.FieldType != "session.encNode" {
		t.Errorf("Path, FieldType = %q, %q; want %d × .Next, session.encNode", err2.Path, err2.FieldType, cborMaxNestedLevels)
	}
	if _, err := CBOR().Marshal(deep); err == nil {
		t.Errorf("Marshal list of %d succeeded, want an error", cborMaxNestedLevels+1)
	}

	// A very long list is refused quickly, not walked to its end.
	if err := checkEncodable(encList(1_000_000)); err == nil || err.Reason != encReasonTooDeep {
		t.Errorf("list of 1e6: %v, want too deep", err)
	}

	// Nested []any counts as well.
	var nested any = 1
	for range 200 {
		nested = []any{nested}
	}
	if err := checkEncodable(nested); err == nil || err.Reason != encReasonTooDeep ||
		err.Path != strings.Repeat("[0]", cborMaxNestedLevels) {
		t.Errorf("nested []any: %v, want too deep at %d × [0]", err, cborMaxNestedLevels)
	}
}

func TestCheckEncodableLongRing(t *testing.T) {
	// A ring longer than the linear-scan part of the cycle check (the
	// walker switches to a map after encSeenAfter entries).
	const n = 3 * encSeenAfter
	head := encList(n)
	last := head
	for last.Next != nil {
		last = last.Next
	}
	last.Next = head
	err := checkEncodable(head)
	if err == nil || err.Reason != encReasonCycle {
		t.Fatalf("ring of %d: %v, want a cycle", n, err)
	}
	if want := strings.Repeat(".Next", n); err.Path != want {
		t.Errorf("cycle closes at %d hops, want %d", len(err.Path)/len(".Next"), n)
	}
}

func TestCheckEncodableError(t *testing.T) {
	err := checkEncodable(encHolder{Any: func() {}})
	err.Key = "cart"
	var e error = err
	var target *EncodeError
	if !errors.As(e, &target) {
		t.Fatal("not an *EncodeError")
	}
	want := `session: cannot put key "cart": value of type session.encHolder, field .Any (func()): a func cannot be encoded`
	if e.Error() != want {
		t.Errorf("Error() =\n%s\nwant\n%s", e.Error(), want)
	}
}

func TestCheckEncodableStaticTypesDoNotAllocate(t *testing.T) {
	now := time.Now()
	for _, v := range []any{
		encOrder{ID: 1}.ID, encStamp{At: now}, &encStamp{At: now},
		[]encBin{{1, "x"}}, map[string][]int{"a": {1}}, encMixed{Name: "x"},
	} {
		checkEncodable(v) // build the plan
		if n := testing.AllocsPerRun(100, func() { checkEncodable(v) }); n != 0 {
			t.Errorf("checkEncodable(%T): %v allocations, want 0", v, n)
		}
		if p := encPlanFor(reflect.TypeOf(v), false); p.walk || p.bad != nil {
			t.Errorf("%T: plan walk=%v bad=%v, want a static plan", v, p.walk, p.bad)
		}
	}
	// Types that can hold an interface or a cycle are walked.
	for _, v := range []any{encHolder{}, &encNode{}, encTree{}, map[string]any{}} {
		if p := encPlanFor(reflect.TypeOf(v), false); !p.walk {
			t.Errorf("%T: plan is static, want a walk", v)
		}
	}
}

func TestCheckEncodableConcurrent(t *testing.T) {
	// Plans are built and published concurrently; run under -race.
	type fresh1 struct {
		A []map[string]*encNode
		B any
	}
	type fresh2 struct{ F []fresh1 }
	vals := []any{fresh1{B: 1}, fresh2{F: []fresh1{{B: func() {}}}}, &fresh1{}, []fresh2{{}}}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				for _, v := range vals {
					checkEncodable(v)
				}
			}
		})
	}
	wg.Wait()
	if err := checkEncodable(fresh2{F: []fresh1{{B: func() {}}}}); err == nil || err.Path != ".F[0].B" {
		t.Errorf("got %v, want a refusal at .F[0].B", err)
	}
}

type encBenchUser struct {
	Name     string
	Email    string
	Roles    []string
	LoggedIn time.Time
	ID       int64
}

type encBenchCart struct {
	Items []struct {
		SKU   string
		Qty   int
		Price float64
	}
	Coupon string
	Notes  map[string]any
}

func BenchmarkCheckEncodable(b *testing.B) {
	user := encBenchUser{Name: "a", Email: "a@b", Roles: []string{"x"}, LoggedIn: time.Now(), ID: 1}
	cart := encBenchCart{Notes: map[string]any{"gift": true, "msg": "hi", "n": 3}}
	for i := range 10 {
		cart.Items = append(cart.Items, struct {
			SKU   string
			Qty   int
			Price float64
		}{fmt.Sprint(i), i, 1.5})
	}
	var list *encNode
	for i := range 10 {
		list = &encNode{V: i, Next: list}
	}
	for _, bc := range []struct {
		name string
		v    any
	}{
		{"int", 42},
		{"user", user},
		{"*user", &user},
		{"cart-with-any", cart},
		{"map[string]any", map[string]any{"a": 1, "b": "x", "c": []any{1, 2}, "d": map[string]any{"e": 1.5}}},
		{"list10", list},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if err := checkEncodable(bc.v); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
