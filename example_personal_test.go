package es_test

import (
	"context"
	"fmt"

	"github.com/pgevent/es"
	"github.com/pgevent/es/memstore"
)

// CustomerSignedUp carries personal data: Name and Email are encrypted
// with the key of the subject CustomerID names; Erased lists the personal
// fields whose key was deleted.
type CustomerSignedUp struct {
	CustomerID string `es:"subject"`
	Name       string `es:"personal"`
	Email      string `es:"personal"`
	Plan       string
	Erased     []string `es:"erased"`
}

// Encrypt personal fields with a store's keys, then forget the subject:
// the event still decodes, its personal fields erased.
func ExampleRegistry_ForgetSubject() {
	ctx := context.Background()
	store := memstore.New(nil) // pgstore.Store keeps its keys in subject_keys
	r := es.NewRegistry()
	if err := es.Register[CustomerSignedUp](r, "CustomerSignedUp"); err != nil {
		panic(err)
	}
	if err := r.SetKeyring(store, nil); err != nil {
		panic(err)
	}
	ne, err := r.NewEvent(CustomerSignedUp{CustomerID: "customer-42", Name: "Ada", Email: "ada@example.com", Plan: "gold"}, nil)
	if err != nil {
		panic(err)
	}
	stored := es.Event{StreamID: "customer-42", Version: 1, Type: ne.Type, Data: ne.Data}

	v, _ := r.DecodeContext(ctx, stored, nil)
	fmt.Printf("%+v\n", v)
	forgotten, _ := r.ForgetSubject(ctx, "customer-42")
	fmt.Println("forgotten:", forgotten)
	v, err = r.DecodeContext(ctx, stored, nil)
	fmt.Printf("%+v (error: %v)\n", v, err)
	_, err = r.NewEvent(CustomerSignedUp{CustomerID: "customer-42", Email: "ada@example.org"}, nil)
	fmt.Println(err)
	// Output:
	// {CustomerID:customer-42 Name:Ada Email:ada@example.com Plan:gold Erased:[]}
	// forgotten: true
	// {CustomerID:customer-42 Name: Email: Plan:gold Erased:[Name Email]} (error: <nil>)
	// encoding "CustomerSignedUp": personal field Email: subject "customer-42": es: subject forgotten
}
