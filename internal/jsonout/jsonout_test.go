package jsonout

import (
	"encoding/json"
	"testing"
	"time"
)

type inner struct {
	Names []string `json:"names"`
}

type outer struct {
	List   []inner          `json:"list"`
	Nil    []int            `json:"nil"`
	Ptr    *inner           `json:"ptr"`
	Map    map[string][]int `json:"map"`
	Any    any              `json:"any"`
	Bytes  []byte           `json:"bytes"`
	Time   time.Time        `json:"time"`
	hidden []int
}

func TestNilSlicesBecomeEmptyArrays(t *testing.T) {
	v := outer{List: []inner{{}}, Ptr: &inner{}, Map: map[string][]int{"k": nil}, Any: inner{}, hidden: []int{1}}
	b, err := json.Marshal(EmptyLists(v))
	if err != nil {
		t.Fatal(err)
	}
	want := `{"list":[{"names":[]}],"nil":[],"ptr":{"names":[]},"map":{"k":[]},"any":{"names":[]},"bytes":null,"time":"0001-01-01T00:00:00Z"}`
	if string(b) != want {
		t.Fatalf("got  %s\nwant %s", b, want)
	}
	if v.Ptr.Names != nil || v.List[0].Names != nil {
		t.Fatal("EmptyLists modified its argument")
	}
	if b, _ := json.Marshal(EmptyLists([]inner(nil))); string(b) != "[]" {
		t.Fatalf("top-level nil slice: %s", b)
	}
	if EmptyLists(nil) != nil {
		t.Fatal("nil must stay nil")
	}
}
