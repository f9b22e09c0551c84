package webanktest

import "testing"

func TestSignKnownAnswers(t *testing.T) {
	// Vectors 1 and 3 of docs/protocol.md §12: the five getOcrResult values
	// {app_id, order_no, version, SIGN ticket, nonce}.
	tests := []struct {
		name                                   string
		appID, orderNo, version, ticket, nonce string
		want                                   string
	}{
		{
			name:    "vector 1",
			appID:   "appId001",
			orderNo: "aabc1457895464",
			version: "1.0.0",
			ticket:  "FxlAe3HFtEy73Um0pJNzIUriwtfnS3KRcPXiesd5ulS4XRAIcT0FbfaP52dwZf5S",
			nonce:   "kHoSxvLZGxSoFsjxlbzEoUzh5PAnTU7T",
			want:    "993D057C652D97FD90D5D298F2E5DC4B8D893CBC",
		},
		{
			name:    "vector 3",
			appID:   "IDAXXXXX",
			orderNo: "orderNo596551",
			version: "1.0.0",
			ticket:  "XO99Qfxlti9iTVgHAjwvJdAZKN3nMuUhrsPdPlPVKlcyS50N6tlLnfuFBPIucaMS",
			nonce:   "kHoSxvLZGxSoFsjxlbzEoUzh5PAnTU7T",
			want:    "6CD5F0DBCFA1155E2A66754B33C2E67DD358393B",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := sign(tt.appID, tt.orderNo, tt.version, tt.ticket, tt.nonce); got != tt.want {
				t.Errorf("sign = %s, want %s", got, tt.want)
			}
			// The values are sorted, so the argument order must not matter.
			if got := sign(tt.nonce, tt.ticket, tt.version, tt.orderNo, tt.appID); got != tt.want {
				t.Errorf("sign(reversed) = %s, want %s", got, tt.want)
			}
		})
	}
}
