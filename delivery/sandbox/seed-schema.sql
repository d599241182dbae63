-- The production database's schema at v1.0.0, which the sandbox seeds when table trips is absent (tests reuse it):
-- 2,500 trips of 50 users; a destination is 'City, Country'.
CREATE TABLE trips (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    user_id bigint NOT NULL,
    destination text NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO trips (user_id, destination)
SELECT g % 50, (ARRAY['Jeju, South Korea', 'Busan, South Korea', 'Seoul, South Korea', 'Tokyo, Japan', 'Osaka, Japan'])[g % 5 + 1]
FROM generate_series(1, 2500) AS g;
