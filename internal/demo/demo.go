// Package demo owns the demo catalog of an auto-parts shop and its starting stock: about 200
// SKUs across brakes, filters, batteries, wipers, tyres, lighting, oils and fluids, spark plugs
// and suspension, with real brands and realistic EUR prices. It is deterministic, so demos,
// load tests and `make run` always see the same shop. It imports only the standard library.
package demo

import (
	"hash/fnv"
	"slices"
	"strconv"
	"strings"
)

// Currency is the currency of every demo price.
const Currency = "EUR"

// Categories of the demo catalog.
const (
	CategoryBrakes     = "brakes"
	CategoryFilters    = "filters"
	CategoryBatteries  = "batteries"
	CategoryWipers     = "wipers"
	CategoryTyres      = "tyres"
	CategoryLighting   = "lighting"
	CategoryOilsFluids = "oils-fluids"
	CategorySparkPlugs = "spark-plugs"
	CategorySuspension = "suspension"
)

// HotStock is the starting stock of every hot SKU: small, so flash sales sell out.
const HotStock = 100

// Product is one demo catalog entry; prices are euro cents.
type Product struct {
	SKU        string
	Name       string
	Category   string
	Brand      string
	PriceMinor int64
}

// Catalog returns the demo catalog sorted by SKU. Each call returns a fresh slice.
func Catalog() []Product {
	var ps []Product
	add := func(sku, category, brand, name string, price int64) {
		ps = append(ps, Product{SKU: sku, Name: name, Category: category, Brand: brand,
			PriceMinor: price})
	}
	brakes(add)
	filters(add)
	batteries(add)
	wipers(add)
	tyres(add)
	lighting(add)
	oilsFluids(add)
	sparkPlugs(add)
	suspension(add)
	slices.SortFunc(ps, func(a, b Product) int { return strings.Compare(a.SKU, b.SKU) })
	return ps
}

// HotSKUs returns the few SKUs that flash sales and load tests hammer: popular parts with
// HotStock units each.
func HotSKUs() []string {
	return []string{
		"BRK-PAD-1001", // front pads, VW Golf VII
		"BAT-5001",     // Varta Blue Dynamic E11
		"TYR-WIN-7101", // Michelin Alpin 6 205/55 R16
		"WIP-6001",     // Bosch Aerotwin A 863 S
		"OIL-ENG-9001", // Castrol EDGE 5W-30 LL 5 l
	}
}

// Stock returns the starting on-hand quantity of a demo SKU: HotStock for hot SKUs, otherwise a
// fixed value between 20 and 500 derived from the SKU. SKUs outside the catalog have none.
func Stock(sku string) int64 {
	if slices.Contains(HotSKUs(), sku) {
		return HotStock
	}
	if !slices.ContainsFunc(Catalog(), func(p Product) bool { return p.SKU == sku }) {
		return 0
	}
	return stockFor(sku)
}

// StockLevels returns the starting on-hand quantity of every catalog SKU.
func StockLevels() map[string]int64 {
	levels := make(map[string]int64)
	for _, p := range Catalog() {
		levels[p.SKU] = stockFor(p.SKU)
	}
	for _, sku := range HotSKUs() {
		levels[sku] = HotStock
	}
	return levels
}

// stockFor spreads quantities over 20..500, in steps of 5 like pallets and cartons.
func stockFor(sku string) int64 {
	h := fnv.New32a()
	h.Write([]byte(sku))
	return 20 + int64(h.Sum32()%97)*5
}

type addFunc func(sku, category, brand, name string, price int64)

// vehicle is a fitment used to name brake and filter parts.
type vehicle struct {
	model string
	price int64 // front brake pad price in cents; other parts scale from it
}

func vehicles() []vehicle {
	return []vehicle{
		{"VW Golf VII 1.4 TSI", 3990},
		{"Skoda Octavia III 2.0 TDI", 4290},
		{"Ford Focus III 1.6 Ti-VCT", 3690},
		{"Opel Astra K 1.4 Turbo", 3790},
		{"BMW 3 Series F30 320d", 6490},
		{"Audi A4 B9 2.0 TDI", 6890},
		{"Mercedes-Benz C-Class W205 C 200", 7290},
		{"Renault Clio IV 0.9 TCe", 3290},
		{"Peugeot 308 II 1.2 PureTech", 3490},
		{"Toyota Corolla E210 1.8 Hybrid", 4590},
		{"Fiat 500 1.2", 2890},
		{"Volvo XC60 II D4", 7990},
	}
}

// price90 rounds cents to a shelf price ending in ,90.
func price90(cents int64) int64 { return cents/100*100 + 90 }

func brakes(add addFunc) {
	vs := vehicles()
	padBrands := []string{"Bosch", "Brembo", "ATE", "TRW", "Textar", "Ferodo"}
	for i, v := range vs { // 24 pad sets
		add(sku("BRK-PAD-", 1001+2*i), CategoryBrakes, padBrands[i%len(padBrands)],
			"Brake Pad Set, Front - "+v.model, v.price)
		add(sku("BRK-PAD-", 1002+2*i), CategoryBrakes, padBrands[(i+3)%len(padBrands)],
			"Brake Pad Set, Rear - "+v.model, price90(v.price*8/10))
	}
	discs := []struct {
		brand, size string
		vehicle     int
		rear        bool
	}{
		{"Brembo", "312 mm vented", 0, false},
		{"ATE", "312 mm vented", 1, false},
		{"Zimmermann", "300 mm vented", 2, false},
		{"Bosch", "300 mm vented", 3, false},
		{"Brembo", "312 mm vented, coated", 4, false},
		{"ATE", "338 mm vented, PowerDisc", 5, false},
		{"Zimmermann", "322 mm vented, Coat Z", 6, false},
		{"TRW", "280 mm vented", 7, false},
		{"Bosch", "283 mm vented", 8, false},
		{"Brembo", "296 mm vented", 9, false},
		{"Brembo", "272 mm solid", 0, true},
		{"ATE", "272 mm solid", 1, true},
		{"Zimmermann", "271 mm solid", 2, true},
		{"TRW", "292 mm solid", 3, true},
		{"Brembo", "300 mm vented", 4, true},
		{"ATE", "300 mm solid", 5, true},
	}
	for i, d := range discs { // 16 disc pairs
		axle, factor := "Front", int64(19)
		if d.rear {
			axle, factor = "Rear", 15
		}
		v := vs[d.vehicle]
		add(sku("BRK-DSC-", 2001+i), CategoryBrakes, d.brand,
			"Brake Disc Pair, "+axle+" "+d.size+" - "+v.model, price90(v.price*factor/10))
	}
	calipers := []struct {
		brand, side string
		vehicle     int
		price       int64
	}{
		{"ATE", "Front Left", 0, 11990},
		{"ATE", "Front Right", 0, 11990},
		{"TRW", "Front Left", 2, 9890},
		{"TRW", "Front Right", 2, 9890},
		{"Bosch", "Front Left", 4, 16490},
		{"Bosch", "Rear Left", 6, 18990},
		{"Brembo", "Front Right", 9, 13490},
		{"TRW", "Rear Right", 11, 17990},
	}
	for i, c := range calipers { // 8 remanufactured calipers
		add(sku("BRK-CAL-", 3001+i), CategoryBrakes, c.brand,
			"Brake Caliper, "+c.side+", remanufactured - "+vs[c.vehicle].model, c.price)
	}
}

func filters(add addFunc) {
	type part struct {
		brand, name string
		price       int64
	}
	oil := []part{ // 12
		{"Mann-Filter", "Oil Filter HU 7020 z - VW/Audi/Skoda 2.0 TDI", 1090},
		{"Mann-Filter", "Oil Filter W 712/95 - Opel/Chevrolet 1.4-1.8", 690},
		{"Mahle", "Oil Filter OX 388D - VW/Audi 1.4 TSI", 1190},
		{"Mahle", "Oil Filter OC 90 - Opel/Fiat petrol", 750},
		{"Bosch", "Oil Filter P 7064 - BMW N47/B47 diesel", 1390},
		{"Bosch", "Oil Filter F 026 407 157 - Ford 1.6 Ti-VCT", 990},
		{"Hengst", "Oil Filter E340H D247 - Mercedes-Benz OM651", 1490},
		{"Knecht", "Oil Filter OX 171/2D - Mercedes-Benz M271", 1290},
		{"Mann-Filter", "Oil Filter HU 816 x - BMW petrol", 1190},
		{"Mahle", "Oil Filter OX 416D1 - Renault 0.9/1.2 TCe", 1090},
		{"Bosch", "Oil Filter P 9192 - Peugeot/Citroen 1.2 PureTech", 1190},
		{"Mann-Filter", "Oil Filter HU 6019 z - Toyota 1.8 Hybrid", 1390},
	}
	air := []part{ // 10
		{"Mann-Filter", "Air Filter C 27 009 - VW Golf VII 1.4 TSI", 1590},
		{"Mann-Filter", "Air Filter C 30 005 - BMW 3 Series F30", 1990},
		{"Bosch", "Air Filter S 0359 - Ford Focus III", 1490},
		{"Bosch", "Air Filter S 0148 - Opel Astra K", 1390},
		{"Mahle", "Air Filter LX 3778 - Audi A4 B9", 2290},
		{"Mahle", "Air Filter LX 1780/3 - Mercedes-Benz C-Class", 2190},
		{"Hengst", "Air Filter E1453L - Renault Clio IV", 1290},
		{"Knecht", "Air Filter LX 2832 - Peugeot 308 II", 1690},
		{"K&N", "Performance Air Filter 33-3005 - VW/Audi/Skoda, washable", 5990},
		{"K&N", "Performance Air Filter 33-2990 - BMW 3 Series, washable", 6490},
	}
	cabin := []part{ // 10
		{"Mann-Filter", "Cabin Filter CUK 26 009 activated carbon - VW/Audi/Skoda", 2490},
		{"Mann-Filter", "Cabin Filter FP 26 009 FreciousPlus - VW/Audi/Skoda", 3490},
		{"Bosch", "Cabin Filter R 5557 activated carbon - BMW 3 Series F30", 2990},
		{"Bosch", "Cabin Filter M 2152 - Ford Focus III", 1290},
		{"Mahle", "Cabin Filter LAK 239 activated carbon - Mercedes-Benz C-Class", 2690},
		{"Mahle", "Cabin Filter LA 109 - Opel Astra K", 1390},
		{"Hengst", "Cabin Filter E2945LC activated carbon - Audi A4 B9", 2390},
		{"Hengst", "Cabin Filter E955LI - Renault Clio IV", 1190},
		{"Valeo", "Cabin Filter ClimFilter Protect 701029 - Peugeot 308 II", 2190},
		{"Bosch", "Cabin Filter 1 987 435 055 - Toyota Corolla E210", 1690},
	}
	fuel := []part{ // 6
		{"Mann-Filter", "Fuel Filter WK 820/17 - VW/Audi/Skoda 2.0 TDI", 3290},
		{"Mann-Filter", "Fuel Filter WK 5002 x - BMW diesel", 3890},
		{"Bosch", "Fuel Filter F 026 402 062 - Ford/Peugeot diesel", 2490},
		{"Mahle", "Fuel Filter KL 228/2D - Mercedes-Benz OM651", 4990},
		{"Delphi", "Fuel Filter HDF924E - Renault/Nissan 1.5 dCi", 1990},
		{"Hengst", "Fuel Filter H340WK - Audi A4 B9 TDI", 4290},
	}
	for _, g := range []struct {
		prefix string
		base   int
		parts  []part
	}{
		{"FLT-OIL-", 4001, oil},
		{"FLT-AIR-", 4101, air},
		{"FLT-CAB-", 4201, cabin},
		{"FLT-FUE-", 4301, fuel},
	} {
		for i, p := range g.parts {
			add(sku(g.prefix, g.base+i), CategoryFilters, p.brand, p.brand+" "+p.name, p.price)
		}
	}
}

func batteries(add addFunc) {
	list := []struct {
		brand, name string
		price       int64
	}{ // 12
		{"Varta", "Blue Dynamic E11 12V 74Ah 680A", 11990},
		{"Varta", "Silver Dynamic AGM E39 12V 70Ah 760A Start-Stop", 21990},
		{"Varta", "Blue Dynamic EFB N65 12V 65Ah 650A Start-Stop", 14990},
		{"Varta", "Black Dynamic C22 12V 52Ah 470A", 7990},
		{"Bosch", "S4 005 12V 60Ah 540A", 10990},
		{"Bosch", "S5 A08 AGM 12V 70Ah 760A Start-Stop", 22990},
		{"Bosch", "S3 002 12V 45Ah 400A", 7490},
		{"Exide", "Premium EA770 12V 77Ah 760A", 12990},
		{"Exide", "Start-Stop EFB EL700 12V 70Ah 650A", 13990},
		{"Banner", "Power Bull P7209 12V 72Ah 670A", 11490},
		{"Yuasa", "YBX3096 12V 70Ah 640A", 11990},
		{"Varta", "Promotive Black 12V 140Ah 800A (truck)", 22990},
	}
	for i, b := range list {
		add(sku("BAT-", 5001+i), CategoryBatteries, b.brand, b.brand+" "+b.name+" Car Battery",
			b.price)
	}
}

func wipers(add addFunc) {
	list := []struct {
		brand, name string
		price       int64
	}{ // 12
		{"Bosch", "Aerotwin A 863 S Wiper Blade Set 600/450 mm", 2990},
		{"Bosch", "Aerotwin A 297 S Wiper Blade Set 650/400 mm", 3290},
		{"Bosch", "Aerotwin AR 601 S Wiper Blade Set 600/400 mm", 2790},
		{"Bosch", "Twin 550 Wiper Blade Set 550/550 mm", 1690},
		{"Bosch", "Rear H 840 Rear Wiper Blade 280 mm", 1190},
		{"Valeo", "Silencio X.TRM VM466 Wiper Blade Set 650/400 mm", 3190},
		{"Valeo", "Silencio Flat Blade VF810 Wiper Blade Set 600/450 mm", 2890},
		{"Valeo", "First Multiconnection 575008 Wiper Blade 600 mm", 1290},
		{"Valeo", "Rear Wiper Blade VR281 280 mm", 990},
		{"SWF", "VisioNext 119318 Wiper Blade Set 650/400 mm", 2490},
		{"Champion", "AeroVantage AFL6540 Wiper Blade Set 650/400 mm", 2290},
		{"Michelin", "Stealth Hybrid Wiper Blade 550 mm", 1490},
	}
	for i, w := range list {
		add(sku("WIP-", 6001+i), CategoryWipers, w.brand, w.brand+" "+w.name, w.price)
	}
}

func tyres(add addFunc) {
	type tyre struct {
		brand, model, size string
		price              int64
	}
	summer := []tyre{ // 12
		{"Michelin", "Primacy 4+", "205/55 R16 91V", 9890},
		{"Michelin", "Pilot Sport 5", "225/45 R17 94Y XL", 13990},
		{"Continental", "PremiumContact 7", "205/55 R16 91V", 9490},
		{"Continental", "SportContact 7", "245/40 R18 97Y XL", 17490},
		{"Bridgestone", "Turanza 6", "225/45 R17 91W", 11290},
		{"Pirelli", "P Zero PZ4", "225/40 R18 92Y XL", 15990},
		{"Goodyear", "EfficientGrip Performance 2", "195/65 R15 91H", 7490},
		{"Goodyear", "Eagle F1 Asymmetric 6", "225/45 R17 94Y XL", 12990},
		{"Hankook", "Ventus Prime 4", "205/55 R16 91V", 7290},
		{"Continental", "EcoContact 6", "185/65 R15 88H", 6990},
		{"Michelin", "e.Primacy", "215/55 R17 98W XL", 12490},
		{"Pirelli", "Cinturato P7 C2", "225/55 R17 101W XL", 12790},
	}
	winter := []tyre{ // 12
		{"Michelin", "Alpin 6", "205/55 R16 91H", 10490},
		{"Michelin", "Pilot Alpin 5", "225/45 R17 94V XL", 14990},
		{"Continental", "WinterContact TS 870", "205/55 R16 91H", 9990},
		{"Continental", "WinterContact TS 870 P", "225/45 R17 91H", 13490},
		{"Goodyear", "UltraGrip Performance 3", "205/55 R16 91H", 9590},
		{"Goodyear", "UltraGrip 9+", "195/65 R15 91T", 7990},
		{"Nokian", "Snowproof 2", "225/45 R17 94V XL", 12990},
		{"Bridgestone", "Blizzak LM005", "205/55 R16 91H", 9290},
		{"Pirelli", "Winter Sottozero 3", "225/50 R17 98H XL", 14490},
		{"Hankook", "Winter i*cept RS3", "195/65 R15 91T", 6790},
		{"Dunlop", "Winter Sport 5", "205/55 R16 91H", 8790},
		{"Continental", "WinterContact 8 S", "235/55 R19 105V XL", 19990},
	}
	allSeason := []tyre{ // 8
		{"Michelin", "CrossClimate 2", "205/55 R16 91V", 11290},
		{"Michelin", "CrossClimate 2", "225/45 R17 94Y XL", 14290},
		{"Goodyear", "Vector 4Seasons Gen-3", "205/55 R16 94V XL", 9890},
		{"Continental", "AllSeasonContact 2", "205/55 R16 91H", 10290},
		{"Bridgestone", "Turanza All Season 6", "225/45 R17 94W XL", 12490},
		{"Nokian", "Seasonproof 1", "195/65 R15 95V XL", 8490},
		{"Hankook", "Kinergy 4S 2", "205/55 R16 91H", 8290},
		{"Vredestein", "Quatrac", "195/65 R15 91H", 7690},
	}
	for _, g := range []struct {
		prefix, season string
		base           int
		list           []tyre
	}{
		{"TYR-SUM-", "Summer", 7001, summer},
		{"TYR-WIN-", "Winter", 7101, winter},
		{"TYR-ALL-", "All-Season", 7201, allSeason},
	} {
		for i, t := range g.list {
			add(sku(g.prefix, g.base+i), CategoryTyres, t.brand,
				t.brand+" "+t.model+" "+t.size+" "+g.season+" Tyre", t.price)
		}
	}
}

func lighting(add addFunc) {
	list := []struct {
		brand, name string
		price       int64
	}{ // 14
		{"Philips", "X-tremeVision Pro150 H7 Bulb 12V 55W, twin pack", 2990},
		{"Philips", "Vision H4 Bulb 12V 60/55W, single", 690},
		{"Philips", "LongLife EcoVision H1 Bulb 12V 55W, single", 890},
		{"Philips", "WhiteVision Ultra H11 Bulb 12V 55W, twin pack", 2490},
		{"Philips", "Xenon Vision D1S Bulb 85V 35W", 7990},
		{"Philips", "LongLife W5W Bulb 12V 5W, twin pack", 390},
		{"Osram", "Night Breaker Laser H7 Bulb 12V 55W, twin pack", 3290},
		{"Osram", "Night Breaker 200 H4 Bulb 12V 60/55W, twin pack", 3490},
		{"Osram", "Original Line HB4 9006 Bulb 12V 51W, single", 790},
		{"Osram", "Xenarc Original D3S Bulb 42V 35W", 8490},
		{"Osram", "Original Line P21W Bulb 12V 21W, twin pack", 390},
		{"Osram", "Ultra Life H7 Bulb 12V 55W, single", 990},
		{"Bosch", "Pure Light H7 Bulb 12V 55W, single", 490},
		{"Valeo", "Essential PY21W amber Bulb 12V 21W, twin pack", 350},
	}
	for i, l := range list {
		add(sku("LGT-BLB-", 8001+i), CategoryLighting, l.brand, l.brand+" "+l.name, l.price)
	}
}

func oilsFluids(add addFunc) {
	list := []struct {
		prefix      string
		brand, name string
		price       int64
	}{ // 16
		{"OIL-ENG-", "Castrol", "EDGE 5W-30 LL Engine Oil 5 l", 5990},
		{"OIL-ENG-", "Castrol", "Magnatec 5W-40 C3 Engine Oil 4 l", 3990},
		{"OIL-ENG-", "Mobil", "Mobil 1 ESP 0W-30 Engine Oil 5 l", 6490},
		{"OIL-ENG-", "Mobil", "Super 3000 X1 5W-40 Engine Oil 4 l", 3490},
		{"OIL-ENG-", "Liqui Moly", "Top Tec 4200 5W-30 Engine Oil 5 l", 5990},
		{"OIL-ENG-", "Shell", "Helix Ultra 5W-40 Engine Oil 5 l", 4990},
		{"OIL-ENG-", "Total", "Quartz INEO ECS 5W-30 Engine Oil 5 l", 4490},
		{"OIL-ENG-", "Motul", "8100 X-clean 5W-40 Engine Oil 5 l", 5490},
		{"FLD-BRK-", "ATE", "SL.6 DOT 4 Brake Fluid 1 l", 1790},
		{"FLD-BRK-", "Bosch", "DOT 4 Brake Fluid 0.5 l", 790},
		{"FLD-ATF-", "Castrol", "Transmax Dex/Merc ATF 1 l", 1290},
		{"FLD-GEA-", "Motul", "Gear 300 75W-90 Gear Oil 1 l", 2490},
		{"FLD-CLT-", "Febi Bilstein", "G12+ Coolant Concentrate 1.5 l", 1190},
		{"FLD-CLT-", "Liqui Moly", "KFS 13 Antifreeze Concentrate 1 l", 990},
		{"FLD-SCR-", "Sonax", "Windscreen Wash Winter -20 °C 5 l", 890},
		{"FLD-ADB-", "BASF", "AdBlue 10 l with spout", 1490},
	}
	for i, f := range list {
		add(sku(f.prefix, 9001+i), CategoryOilsFluids, f.brand, f.brand+" "+f.name, f.price)
	}
}

func sparkPlugs(add addFunc) {
	list := []struct {
		brand, name string
		price       int64
	}{ // 12
		{"NGK", "BKR6E Nickel Spark Plug", 390},
		{"NGK", "Iridium IX BKR6EIX Spark Plug", 1290},
		{"NGK", "Laser Platinum PFR6Q Spark Plug", 1590},
		{"NGK", "Laser Iridium ILZKR7B11 Spark Plug", 1690},
		{"Bosch", "Super Plus FR7DC+ Spark Plug", 490},
		{"Bosch", "Double Iridium FR6KII332S Spark Plug", 1490},
		{"Bosch", "Platinum Iridium FR7KII33X Spark Plug", 1390},
		{"Denso", "Iridium Power IK20 Spark Plug", 1390},
		{"Denso", "Iridium TT IK20TT Spark Plug", 1190},
		{"Denso", "Nickel TT K20TT Spark Plug", 590},
		{"Champion", "RC9YC Copper Plus Spark Plug", 450},
		{"Beru", "Ultra 14 FR 7 DC Spark Plug", 550},
	}
	for i, s := range list {
		add(sku("SPK-PLG-", 9101+i), CategorySparkPlugs, s.brand, s.brand+" "+s.name, s.price)
	}
}

func suspension(add addFunc) {
	vs := vehicles()
	list := []struct {
		prefix      string
		brand, name string
		vehicle     int
		price       int64
	}{ // 16
		{"SUS-SHK-", "Bilstein", "B4 Shock Absorber, Front", 0, 8990},
		{"SUS-SHK-", "Sachs", "Super Touring Shock Absorber, Rear", 0, 4490},
		{"SUS-SHK-", "Monroe", "OESpectrum Shock Absorber, Front", 2, 7990},
		{"SUS-SHK-", "KYB", "Excel-G Shock Absorber, Front", 4, 9490},
		{"SUS-SHK-", "Bilstein", "B6 Sport Shock Absorber, Front", 6, 16990},
		{"SUS-SHK-", "Sachs", "Shock Absorber, Rear", 9, 5290},
		{"SUS-SPR-", "Eibach", "Pro-Kit Lowering Springs, set of 4", 0, 21990},
		{"SUS-SPR-", "Lesjoefors", "Coil Spring, Front", 3, 4990},
		{"SUS-SPR-", "Sachs", "Coil Spring, Rear", 7, 3990},
		{"SUS-SPR-", "Eibach", "B12 Pro-Kit, set of 4", 4, 79990},
		{"SUS-ARM-", "Lemfoerder", "Control Arm, Front Left", 1, 8490},
		{"SUS-ARM-", "Lemfoerder", "Control Arm, Front Right", 1, 8490},
		{"SUS-ARM-", "Meyle", "HD Stabiliser Link, Front", 0, 2290},
		{"SUS-ARM-", "Febi Bilstein", "Stabiliser Link, Front", 5, 1990},
		{"SUS-ARM-", "TRW", "Tie Rod End, Front Left", 2, 2490},
		{"SUS-ARM-", "Lemfoerder", "Top Strut Mount, Front", 8, 3490},
	}
	for i, s := range list {
		add(sku(s.prefix, 9201+i), CategorySuspension, s.brand,
			s.brand+" "+s.name+" - "+vs[s.vehicle].model, s.price)
	}
}

// sku formats a SKU from a prefix and a number.
func sku(prefix string, n int) string {
	return prefix + strconv.Itoa(n)
}
