package room

// PEMM returns the built-in CNCF Platform Engineering Maturity Model: five
// aspects rated on four levels. The descriptions are our own one-line
// summaries of each cell. Each call returns a fresh copy.
func PEMM() Model {
	return Model{
		ID:   "pemm",
		Name: "CNCF Platform Engineering Maturity Model",
		Levels: []Level{
			{Name: "Provisional", Description: "Platform work happens ad hoc, driven by individuals."},
			{Name: "Operational", Description: "Platform work is dedicated and tracked, but mostly reactive."},
			{Name: "Scalable", Description: "The platform is run as a product that users choose to use."},
			{Name: "Optimizing", Description: "The platform is an ecosystem that users help shape and measure."},
		},
		Aspects: []Aspect{
			{
				ID: "investment", Name: "Investment",
				Question: "How are staff and funds allocated to platform capabilities?",
				Cells: []Cell{
					{"Voluntary or temporary", "People build shared tooling on the side, when their own work allows."},
					{"Dedicated team", "A team is funded to run the platform, mostly as a cost centre."},
					{"As product", "The platform has a product owner, a roadmap and a budget tied to user value."},
					{"Enabled ecosystem", "Investment goes to letting other teams build on and contribute to the platform."},
				},
			},
			{
				ID: "adoption", Name: "Adoption",
				Question: "Why and how do users discover and use platforms and their capabilities?",
				Cells: []Cell{
					{"Erratic", "Teams find capabilities by word of mouth, and usage comes and goes."},
					{"Extrinsic push", "Teams use the platform because a mandate or a migration plan says so."},
					{"Intrinsic pull", "Teams choose the platform because it saves them time and trouble."},
					{"Participatory", "Users propose, build and share capabilities with the platform team."},
				},
			},
			{
				ID: "interfaces", Name: "Interfaces",
				Question: "How do users interact with and consume platform capabilities?",
				Cells: []Cell{
					{"Custom processes", "Every request is a ticket or a chat message handled by hand."},
					{"Standard tooling", "Shared templates and tools exist, but users still need help to use them."},
					{"Self-service solutions", "Users get what they need on their own through a portal, API or CLI."},
					{"Integrated services", "Capabilities are built into users' everyday tools and workflows."},
				},
			},
			{
				ID: "operations", Name: "Operations",
				Question: "How are platforms and capabilities planned, prioritized, developed and maintained?",
				Cells: []Cell{
					{"By request", "Work is done when someone asks, and kept alive by whoever built it."},
					{"Centrally tracked", "Capabilities are inventoried and their upkeep is planned centrally."},
					{"Centrally enabled", "A central team sets standards so capabilities are run the same way."},
					{"Managed services", "Capabilities are run as services with owners, SLOs and a lifecycle."},
				},
			},
			{
				ID: "measurement", Name: "Measurement",
				Question: "How is feedback gathered and used to learn and improve?",
				Cells: []Cell{
					{"Ad hoc", "Feedback arrives by accident: complaints, outages, hallway talk."},
					{"Consistent collection", "Usage data and user feedback are gathered on a regular schedule."},
					{"Insights", "Collected data is analysed and drives the platform's priorities."},
					{"Quantitative and qualitative", "Metrics and user research together steer and prove the platform's value."},
				},
			},
		},
	}
}
