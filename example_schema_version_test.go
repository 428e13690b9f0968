package es_test

import (
	"errors"
	"fmt"

	"github.com/pgevent/es"
)

// UserCreated is at schema version 2: version 1 called the field "email".
type UserCreated struct {
	ContactEmail string `msgpack:"contact_email"`
}

// Evolve an event's shape under the same name: register the type at the
// new version and an upcaster for the old one. Stored events keep the
// version they were written at; each is upcast when read.
func ExampleRegisterWith() {
	r := es.NewRegistry()
	if err := es.RegisterWith[UserCreated](r, "UserCreated", &es.RegisterOpts{SchemaVersion: 2}); err != nil {
		panic(err)
	}
	err := r.RegisterUpcaster("UserCreated", func(m map[string]any) (string, map[string]any, error) { // from version 1
		m["contact_email"] = m["email"]
		delete(m, "email")
		return "UserCreated", m, nil
	})
	if err != nil {
		panic(err)
	}

	ne, _ := r.NewEvent(UserCreated{ContactEmail: "bob@example.com"}, nil)
	fmt.Println("new events are written at version", ne.SchemaVersion)

	// An event version 1 code wrote ({"email": "ann@example.com"}).
	old := es.Event{StreamID: "user-1", Version: 1, Type: "UserCreated", SchemaVersion: 1,
		Data: []byte("\x81\xa5email\xafann@example.com")}
	v, err := r.Decode(old)
	if err != nil {
		panic(err)
	}
	fmt.Printf("version 1 reads as %+v\n", v.(UserCreated))

	// An event newer code wrote.
	_, err = r.Decode(es.Event{StreamID: "user-2", Version: 1, Type: "UserCreated", SchemaVersion: 3, Data: []byte{0x80}})
	fmt.Println(errors.Is(err, es.ErrSchemaVersionAhead), err)
	// Output:
	// new events are written at version 2
	// version 1 reads as {ContactEmail:ann@example.com}
	// true es: event "UserCreated" (stream "user-2", version 1) is at schema version 3, above the registered version 2 (written by newer code)
}
